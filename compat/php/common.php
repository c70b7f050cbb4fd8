<?php
// What the PHP clients share: the connection URL, the operations'
// constants, and one JSON line per operation (see compat_test.go).

$URL = getenv('PGCLOAK_URL');
$CUSTOMER = (int) getenv('COMPAT_CUSTOMER');
const BASE = 9000000;
const NEW_PHONE = '+1 555 0199';
const COLS = ['customer_id', 'customer_number', 'first_name', 'last_name', 'email', 'phone', 'region', 'segment', 'created_at'];

// The fields of new customer BASE+n, in COLS order.
function new_customer(int $n, string $last, string $region = 'north', ?string $phone = null): array
{
    return [BASE + $n, "CMP-$n", 'Compat', $last, strtolower($last) . '@example.org',
        $phone ?? sprintf('+1 555 01%02d', $n), $region, 'consumer', '2024-01-01 00:00:00+00'];
}

function emit(string $op, ?array $rows, ?string $code = null, ?string $error = null): void
{
    $out = ['op' => $op];
    if ($error !== null) {
        $out['code'] = $code ?? '';
        $out['error'] = strtok($error, "\n");
    } else {
        $out['rows'] = array_map(fn ($r) => array_map(fn ($v) => $v === null ? null : (string) $v, array_values($r)), $rows ?? []);
    }
    echo json_encode($out, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES), "\n";
}

// Runs one operation and prints its answer; an error is an answer too.
// $sqlstate extracts the SQLSTATE of the client's exception.
function run(string $op, callable $fn, callable $sqlstate): void
{
    try {
        emit($op, $fn());
    } catch (Throwable $e) {
        fwrite(STDERR, "$op: " . $e->getMessage() . "\n");
        emit($op, null, $sqlstate($e), $e->getMessage());
    }
}
