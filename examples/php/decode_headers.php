<?php
// Read the data latchkey hands the upstream, in a PHP app.
//
// X-Ticket-Data (a ticket's data) and X-Latchkey-Link-Data (a signed link's
// "data" claim) are JSON objects with every non-ASCII character written as
// a \u escape, so the header value is plain ASCII: json_decode gives back
// the original UTF-8 text ("L\u00e9onard" -> "Léonard"). The gateway
// removes any copy a client sent, so the values come from the gateway alone
// (as long as the app is reachable only through it). A header that is
// absent means no data. PHP puts request headers in $_SERVER as HTTP_*.
//
// Run from the command line, it decodes the same names from the environment
// and prints them as JSON.

function latchkey_json(string $header): array
{
    $name = 'HTTP_' . strtoupper(str_replace('-', '_', $header));
    $raw = $_SERVER[$name] ?? getenv($name);
    if ($raw === false || $raw === '') {
        return [];
    }
    // Big integer ids stay exact as strings rather than turning into floats.
    return json_decode($raw, true, 512, JSON_THROW_ON_ERROR | JSON_BIGINT_AS_STRING);
}

function latchkey_ticket_data(): array
{
    return latchkey_json('X-Ticket-Data');
}

function latchkey_link_data(): array
{
    return latchkey_json('X-Latchkey-Link-Data');
}

if (PHP_SAPI === 'cli') {
    $out = ['link' => (object) latchkey_link_data(), 'ticket' => (object) latchkey_ticket_data()];
    echo json_encode($out, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR), "\n";
} else {
    header('Content-Type: text/plain; charset=utf-8');
    $name = latchkey_ticket_data()['first_name'] ?? 'guest';
    echo 'Bonjour ', $name, ' (user ', $_SERVER['HTTP_X_USER_ID'] ?? '-', ")\n";
}
