<?php
// PHP PDO (pdo_pgsql) with its defaults: exceptions on errors (the PHP 8
// default), server-side prepares, autocommit. With the argument
// "emulate", PDO::ATTR_EMULATE_PREPARES is on, as many PHP frameworks set
// it: PDO then puts the values into the text (the simple protocol).
require __DIR__ . '/common.php';

$u = parse_url($URL);
$db = new PDO(sprintf('pgsql:host=%s;port=%d;dbname=%s', $u['host'], $u['port'], ltrim($u['path'], '/')), $u['user'], $u['pass']);
if (($argv[1] ?? '') === 'emulate') {
    $db->setAttribute(PDO::ATTR_EMULATE_PREPARES, true);
}
$state = fn (Throwable $e) => $e instanceof PDOException ? (string) $e->getCode() : '';
$rows = function (string $sql, ...$args) use ($db) {
    $st = $db->prepare($sql);
    $st->execute($args);
    return $st->columnCount() > 0 ? $st->fetchAll(PDO::FETCH_NUM) : [];
};
$insert = 'INSERT INTO customers (' . implode(', ', COLS) . ') VALUES (' . implode(', ', array_fill(0, count(COLS), '?')) . ')';

run('list', fn () => $rows('SELECT customer_id, first_name, last_name, email, city, postal_code FROM customers WHERE segment = ? ORDER BY customer_id DESC LIMIT 5 OFFSET 2', 'premium'), $state);
run('get', fn () => $rows('SELECT customer_id, first_name, last_name, email, phone, postal_code FROM customers WHERE customer_id = ?', $CUSTOMER), $state);
run('count', fn () => $rows('SELECT count(*) FROM customers WHERE segment = ?', 'premium'), $state);
run('join', fn () => $rows('SELECT o.order_id, o.status, c.last_name FROM orders o JOIN customers c ON c.customer_id = o.customer_id WHERE o.customer_id = ? ORDER BY o.order_id', $CUSTOMER), $state);
run('aggregate', fn () => $rows('SELECT c.customer_id, c.last_name, count(o.order_id) FROM customers c LEFT JOIN orders o ON o.customer_id = c.customer_id WHERE c.segment = ? GROUP BY c.customer_id ORDER BY c.customer_id LIMIT 5', 'premium'), $state);
run('update', fn () => $rows('UPDATE customers SET phone = ? WHERE customer_id = ?', NEW_PHONE, $CUSTOMER), $state);
run('create', fn () => $rows("$insert RETURNING customer_id", ...new_customer(1, 'Create')), $state);
run('bulk', function () use ($db, $insert) {
    $st = $db->prepare($insert);
    $db->beginTransaction();
    foreach ([2, 3, 4] as $n) {
        $st->execute(new_customer($n, 'Bulk'));
    }
    $db->commit();
    return [];
}, fn ($e) => [$db->inTransaction() && $db->rollBack(), $state($e)][1]);
run('upsert', fn () => $rows("$insert ON CONFLICT (customer_id) DO UPDATE SET phone = EXCLUDED.phone", ...new_customer(8, 'Fixture', 'north', '+1 555 0108')), $state);
run('delete', fn () => $rows('DELETE FROM customers WHERE customer_id = ?', BASE + 9), $state);
run('transaction', function () use ($db, $insert, $state) {
    $db->beginTransaction();
    $db->exec('SAVEPOINT s');
    $inner = 'ok';
    try {
        $db->prepare($insert)->execute(new_customer(5, 'South', 'south'));
    } catch (PDOException $e) {
        $inner = $state($e);
        $db->exec('ROLLBACK TO SAVEPOINT s');
    }
    $db->prepare($insert)->execute(new_customer(6, 'After'));
    $db->commit();
    return [[$inner]];
}, fn ($e) => [$db->inTransaction() && $db->rollBack(), $state($e)][1]);
