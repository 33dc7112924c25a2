<?php
// Mint a latchkey signed link in plain PHP (hash_hmac, no library).
//
//   php mint_link.php KEY KID URL USER [TTL_SECONDS] [MAX_USES] [MODE] [DATA_JSON]
//
// KEY is an HS256 key as `caddy latchkey links keys` prints it (base64url),
// KID its kid ("default" unless link_keys names others), URL the absolute
// http(s) URL the link opens, USER the user's e-mail address or id. It
// prints the URL with ?token=<JWT> added. The token format is docs/links.md.

function b64url(string $bytes): string
{
    return rtrim(strtr(base64_encode($bytes), '+/', '-_'), '=');
}

function b64url_decode(string $text): string
{
    $bytes = base64_decode(strtr($text, '-_', '+/') . str_repeat('=', (4 - strlen($text) % 4) % 4), true);
    if ($bytes === false) {
        throw new InvalidArgumentException('key is not base64url');
    }
    return $bytes;
}

// The tgt claim: host (lower-case, no trailing dot, no port 80 or 443) and
// decoded path ("/" when empty), without scheme or query.
function latchkey_target(string $url): string
{
    $p = parse_url($url);
    if ($p === false || !in_array($p['scheme'] ?? '', ['http', 'https'], true) || ($p['host'] ?? '') === '') {
        throw new InvalidArgumentException('URL must be an absolute http(s) URL');
    }
    $host = rtrim(strtolower($p['host']), '.'); // "[::1]" keeps its brackets
    if (isset($p['port']) && $p['port'] !== 80 && $p['port'] !== 443) {
        $host .= ':' . $p['port'];
    }
    $path = rawurldecode($p['path'] ?? '');
    return $host . ($path === '' ? '/' : $path);
}

function latchkey_link(string $key, string $kid, string $url, string $user, int $ttl = 604800,
                       int $maxUses = 1, string $mode = 'request', ?array $data = null): string
{
    $now = time();
    $claims = [
        'sub' => $user,                   // e-mail address or decimal user id
        'tgt' => latchkey_target($url),
        'exp' => $now + $ttl,
        'iat' => $now,                    // lets `links revoke --user` work
        'jti' => b64url(random_bytes(16)), // lets `links revoke <jti>` work
        'max' => $maxUses,                // 0 = unlimited until exp
        'mode' => $mode,
    ];
    if ($data) {
        $claims['data'] = $data;
    }
    $header = ['alg' => 'HS256', 'typ' => 'JWT', 'kid' => $kid];
    $input = b64url(json_encode($header, JSON_THROW_ON_ERROR)) . '.' . b64url(json_encode($claims, JSON_THROW_ON_ERROR));
    $token = $input . '.' . b64url(hash_hmac('sha256', $input, $key, true));

    [$base, $fragment] = array_pad(explode('#', $url, 2), 2, null);
    $link = $base . (str_contains($base, '?') ? '&' : '?') . 'token=' . $token;
    return $link . ($fragment !== null ? '#' . $fragment : '');
}

if (PHP_SAPI === 'cli' && realpath($argv[0]) === __FILE__) {
    if ($argc < 5) {
        fwrite(STDERR, "usage: php mint_link.php KEY KID URL USER [TTL_SECONDS] [MAX_USES] [MODE] [DATA_JSON]\n");
        exit(2);
    }
    $data = isset($argv[8]) ? json_decode($argv[8], true, 512, JSON_THROW_ON_ERROR) : null;
    echo latchkey_link(b64url_decode($argv[1]), $argv[2], $argv[3], $argv[4],
        (int) ($argv[5] ?? 604800), (int) ($argv[6] ?? 1), $argv[7] ?? 'request', $data), "\n";
}
