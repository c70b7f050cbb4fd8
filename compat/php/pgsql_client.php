<?php
// PHP's pgsql extension with its defaults: pg_connect, pg_query_params
// (the extended protocol), autocommit; errors are return values.
require __DIR__ . '/common.php';

$u = parse_url($URL);
$db = pg_connect(sprintf('host=%s port=%d dbname=%s user=%s password=%s', $u['host'], $u['port'], ltrim($u['path'], '/'), $u['user'], $u['pass']));

// A failed query throws, carrying its SQLSTATE in the code.
class PgsqlError extends Exception
{
    public string $state;
}
$query = function (string $sql, array $args = []) use ($db) {
    if (!pg_send_query_params($db, $sql, $args)) {
        throw new Exception(pg_last_error($db));
    }
    $res = pg_get_result($db);
    while (pg_get_result($db)) {
    }
    if (in_array(pg_result_status($res), [PGSQL_FATAL_ERROR, PGSQL_BAD_RESPONSE, PGSQL_NONFATAL_ERROR], true)) {
        $e = new PgsqlError(pg_result_error($res));
        $e->state = (string) pg_result_error_field($res, PGSQL_DIAG_SQLSTATE);
        throw $e;
    }
    return $res;
};
$rows = fn (string $sql, ...$args) => pg_fetch_all($query($sql, $args), PGSQL_NUM);
$state = fn (Throwable $e) => $e instanceof PgsqlError ? $e->state : '';
$insert = 'INSERT INTO customers (' . implode(', ', COLS) . ') VALUES (' . implode(', ', array_map(fn ($i) => '$' . ($i + 1), array_keys(COLS))) . ')';

run('list', fn () => $rows('SELECT customer_id, first_name, last_name, email, city, postal_code FROM customers WHERE segment = $1 ORDER BY customer_id DESC LIMIT 5 OFFSET 2', 'premium'), $state);
run('get', fn () => $rows('SELECT customer_id, first_name, last_name, email, phone, postal_code FROM customers WHERE customer_id = $1', $CUSTOMER), $state);
run('count', fn () => $rows('SELECT count(*) FROM customers WHERE segment = $1', 'premium'), $state);
run('join', fn () => $rows('SELECT o.order_id, o.status, c.last_name FROM orders o JOIN customers c ON c.customer_id = o.customer_id WHERE o.customer_id = $1 ORDER BY o.order_id', $CUSTOMER), $state);
run('aggregate', fn () => $rows('SELECT c.customer_id, c.last_name, count(o.order_id) FROM customers c LEFT JOIN orders o ON o.customer_id = c.customer_id WHERE c.segment = $1 GROUP BY c.customer_id ORDER BY c.customer_id LIMIT 5', 'premium'), $state);
run('update', fn () => $rows('UPDATE customers SET phone = $1 WHERE customer_id = $2', NEW_PHONE, $CUSTOMER), $state);
run('create', fn () => $rows("$insert RETURNING customer_id", ...new_customer(1, 'Create')), $state);
run('bulk', function () use ($query, $insert) {
    $query('BEGIN');
    try {
        foreach ([2, 3, 4] as $n) {
            $query($insert, new_customer($n, 'Bulk'));
        }
        $query('COMMIT');
    } catch (Throwable $e) {
        $query('ROLLBACK');
        throw $e;
    }
    return [];
}, $state);
run('upsert', fn () => $rows("$insert ON CONFLICT (customer_id) DO UPDATE SET phone = EXCLUDED.phone", ...new_customer(8, 'Fixture', 'north', '+1 555 0108')), $state);
run('delete', fn () => $rows('DELETE FROM customers WHERE customer_id = $1', BASE + 9), $state);
run('transaction', function () use ($query, $insert, $state) {
    $query('BEGIN');
    try {
        $query('SAVEPOINT s');
        $inner = 'ok';
        try {
            $query($insert, new_customer(5, 'South', 'south'));
        } catch (PgsqlError $e) {
            $inner = $state($e);
            $query('ROLLBACK TO SAVEPOINT s');
        }
        $query($insert, new_customer(6, 'After'));
        $query('COMMIT');
    } catch (Throwable $e) {
        $query('ROLLBACK');
        throw $e;
    }
    return [[$inner]];
}, $state);
