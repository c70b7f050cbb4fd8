// pgJDBC with its defaults: DriverManager, PreparedStatement (server-side
// prepares after five uses), autocommit, generated keys by
// RETURN_GENERATED_KEYS, batches, Savepoint; and the DatabaseMetaData calls
// Java tools make. See compat_test.go for the operations and the output.

import java.net.URI;
import java.sql.*;
import java.util.*;

public class JdbcClient {
    static final long BASE = 9_000_000L;
    static final String NEW_PHONE = "+1 555 0199";
    static final String[] COLS = {"customer_id", "customer_number", "first_name", "last_name", "email", "phone", "region", "segment", "created_at"};
    static final String INSERT = "INSERT INTO customers (" + String.join(", ", COLS) + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)";

    interface Op { List<List<String>> run() throws Exception; }

    static Connection db;

    public static void main(String[] args) throws Exception {
        URI u = URI.create(System.getenv("PGCLOAK_URL"));
        String[] auth = u.getUserInfo().split(":", 2);
        Properties p = new Properties();
        p.setProperty("user", auth[0]);
        p.setProperty("password", auth[1]);
        db = DriverManager.getConnection("jdbc:postgresql://" + u.getHost() + ":" + u.getPort() + u.getPath(), p);
        long customer = Long.parseLong(System.getenv("COMPAT_CUSTOMER"));

        run("list", () -> rows("SELECT customer_id, first_name, last_name, email, city, postal_code FROM customers WHERE segment = ? ORDER BY customer_id DESC LIMIT 5 OFFSET 2", "premium"));
        run("get", () -> rows("SELECT customer_id, first_name, last_name, email, phone, postal_code FROM customers WHERE customer_id = ?", customer));
        run("count", () -> rows("SELECT count(*) FROM customers WHERE segment = ?", "premium"));
        run("join", () -> rows("SELECT o.order_id, o.status, c.last_name FROM orders o JOIN customers c ON c.customer_id = o.customer_id WHERE o.customer_id = ? ORDER BY o.order_id", customer));
        run("aggregate", () -> rows("SELECT c.customer_id, c.last_name, count(o.order_id) FROM customers c LEFT JOIN orders o ON o.customer_id = c.customer_id WHERE c.segment = ? GROUP BY c.customer_id ORDER BY c.customer_id LIMIT 5", "premium"));
        run("update", () -> rows("UPDATE customers SET phone = ? WHERE customer_id = ?", NEW_PHONE, customer));
        run("create", () -> {
            try (PreparedStatement st = db.prepareStatement(INSERT, Statement.RETURN_GENERATED_KEYS)) {
                bind(st, newCustomer(1, "Create", "north", null));
                st.executeUpdate();
                List<List<String>> out = new ArrayList<>();
                try (ResultSet rs = st.getGeneratedKeys()) {
                    while (rs.next()) out.add(List.of(rs.getString("customer_id")));
                }
                return out;
            }
        });
        run("bulk", () -> {
            try (PreparedStatement st = db.prepareStatement(INSERT)) {
                for (int n = 2; n <= 4; n++) {
                    bind(st, newCustomer(n, "Bulk", "north", null));
                    st.addBatch();
                }
                st.executeBatch();
            }
            return List.of();
        });
        run("upsert", () -> {
            try (PreparedStatement st = db.prepareStatement(INSERT + " ON CONFLICT (customer_id) DO UPDATE SET phone = EXCLUDED.phone")) {
                bind(st, newCustomer(8, "Fixture", "north", "+1 555 0108"));
                st.executeUpdate();
            }
            return List.of();
        });
        run("delete", () -> rows("DELETE FROM customers WHERE customer_id = ?", BASE + 9));
        run("transaction", () -> {
            db.setAutoCommit(false);
            try {
                Savepoint sp = db.setSavepoint();
                String inner = "ok";
                try (PreparedStatement st = db.prepareStatement(INSERT)) {
                    bind(st, newCustomer(5, "South", "south", null));
                    st.executeUpdate();
                } catch (SQLException e) {
                    inner = e.getSQLState();
                    db.rollback(sp);
                }
                try (PreparedStatement st = db.prepareStatement(INSERT)) {
                    bind(st, newCustomer(6, "After", "north", null));
                    st.executeUpdate();
                }
                db.commit();
                return List.of(List.of(inner));
            } catch (Exception e) {
                db.rollback();
                throw e;
            } finally {
                db.setAutoCommit(true);
            }
        });
        run("meta_primary_keys", () -> {
            List<List<String>> out = new ArrayList<>();
            try (ResultSet rs = db.getMetaData().getPrimaryKeys(null, "public", "customers")) {
                while (rs.next()) out.add(List.of(rs.getString("COLUMN_NAME")));
            }
            return out;
        });
        run("meta_index_info", () -> {
            TreeSet<String> names = new TreeSet<>();
            try (ResultSet rs = db.getMetaData().getIndexInfo(null, "public", "customers", true, false)) {
                while (rs.next()) if (rs.getString("INDEX_NAME") != null) names.add(rs.getString("INDEX_NAME"));
            }
            List<List<String>> out = new ArrayList<>();
            for (String n : names) out.add(List.of(n));
            return out;
        });
        db.close();
    }

    static Object[] newCustomer(int n, String last, String region, String phone) {
        return new Object[] {BASE + n, "CMP-" + n, "Compat", last, last.toLowerCase() + "@example.org",
            phone != null ? phone : String.format("+1 555 01%02d", n), region, "consumer",
            java.time.OffsetDateTime.of(2024, 1, 1, 0, 0, 0, 0, java.time.ZoneOffset.UTC)};
    }

    static void bind(PreparedStatement st, Object... args) throws SQLException {
        for (int i = 0; i < args.length; i++) st.setObject(i + 1, args[i]);
    }

    static List<List<String>> rows(String sql, Object... args) throws SQLException {
        try (PreparedStatement st = db.prepareStatement(sql)) {
            bind(st, args);
            List<List<String>> out = new ArrayList<>();
            if (!st.execute()) return out;
            try (ResultSet rs = st.getResultSet()) {
                int n = rs.getMetaData().getColumnCount();
                while (rs.next()) {
                    List<String> r = new ArrayList<>();
                    for (int i = 1; i <= n; i++) r.add(rs.getString(i));
                    out.add(r);
                }
            }
            return out;
        }
    }

    static void run(String op, Op f) {
        StringBuilder b = new StringBuilder("{\"op\":").append(quote(op));
        try {
            List<List<String>> rows = f.run();
            b.append(",\"rows\":[");
            for (int i = 0; i < rows.size(); i++) {
                b.append(i > 0 ? ",[" : "[");
                for (int j = 0; j < rows.get(i).size(); j++) {
                    if (j > 0) b.append(',');
                    b.append(quote(rows.get(i).get(j)));
                }
                b.append(']');
            }
            b.append(']');
        } catch (Exception e) {
            System.err.println(op + ": " + e);
            String code = e instanceof SQLException ? ((SQLException) e).getSQLState() : "";
            String msg = String.valueOf(e.getMessage()).split("\n")[0];
            b.append(",\"code\":").append(quote(code == null ? "" : code)).append(",\"error\":").append(quote(msg));
        }
        System.out.println(b.append('}'));
    }

    static String quote(String s) {
        if (s == null) return "null";
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') b.append('\\').append(c);
            else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
            else b.append(c);
        }
        return b.append('"').toString();
    }
}
