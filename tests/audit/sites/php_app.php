<?php
// tests/audit/sites/php_app.php - a tiny PHP site with native sessions, run
// by `php -S` for test_audit.py.  SITE_MODE=weak is the PHP session
// tutorial as people deploy it (PHP's defaults: no session_regenerate_id at
// login, session.use_strict_mode off, no HttpOnly, no SameSite, no CSRF
// token, logout without deleting the cookie); SITE_MODE=secure does each of
// those right; SITE_MODE=trans-sid is secure with URL session IDs allowed.
// Users: alice / SITE_PASSWORD.
$mode = getenv('SITE_MODE');
// SITE_MODE=trans-sid: secure, but with URL session IDs on (the pre-cookie
// PHP style some legacy sites keep): session.use_only_cookies = 0 accepts
// ?PHPSESSID=... and session.use_trans_sid = 1 writes it into links.
$secure = $mode === 'secure' || $mode === 'trans-sid';
if ($mode === 'trans-sid') {
    ini_set('session.use_only_cookies', '0');
    ini_set('session.use_trans_sid', '1');
}
if ($secure) {
    ini_set('session.use_strict_mode', '1');
    ini_set('session.cookie_httponly', '1');
    ini_set('session.cookie_samesite', 'Lax');
}
ini_set('session.save_path', getenv('SITE_SESSIONS'));
session_start();

function page($title, $body) {
    header('Content-Type: text/html; charset=utf-8');
    echo "<!doctype html><html><head><title>$title</title></head><body><h1>$title</h1>$body</body></html>";
}
function token_field() {
    global $secure;
    if (!$secure) return '';
    if (empty($_SESSION['csrf'])) $_SESSION['csrf'] = bin2hex(random_bytes(32));
    return '<input type="hidden" name="csrf" value="' . $_SESSION['csrf'] . '">';
}
function token_ok() {
    global $secure;
    return !$secure || (isset($_POST['csrf'], $_SESSION['csrf']) && hash_equals($_SESSION['csrf'], $_POST['csrf']));
}

$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
$method = $_SERVER['REQUEST_METHOD'];
if ($path === '/' ) {
    page('Home', '<p><a href="/login">Log in</a></p>');
} elseif ($path === '/login' && $method === 'GET') {
    page('Log in', '<form method="post" action="/login">' . token_field() .
         '<input name="user"><input name="password" type="password"><button>Log in</button></form>');
} elseif ($path === '/login' && $method === 'POST') {
    if (!token_ok()) { http_response_code(403); page('Refused', '<p>bad token</p>'); exit; }
    if (($_POST['user'] ?? '') === 'alice' && hash_equals(getenv('SITE_PASSWORD'), $_POST['password'] ?? '')) {
        if ($secure) session_regenerate_id(true);     // fixation
        $_SESSION['user'] = 'alice';
        if ($secure) $_SESSION['csrf'] = bin2hex(random_bytes(32));
        header('Location: /account', true, 303);
    } else {
        header('Location: /login?failed=1', true, 303);
    }
} elseif ($path === '/account') {
    if (empty($_SESSION['user'])) { header('Location: /login', true, 302); exit; }
    page('Account', '<p>Hello ' . htmlspecialchars($_SESSION['user']) . '</p>' .
         '<form method="post" action="/transfer">' . token_field() .
         '<input name="to"><input name="amount" type="number"><button>Send</button></form>' .
         '<form method="post" action="/logout">' . token_field() . '<button>Log out</button></form>');
} elseif ($path === '/transfer' && $method === 'POST') {
    if (empty($_SESSION['user'])) { header('Location: /login', true, 302); exit; }
    if (!token_ok()) { http_response_code(403); page('Refused', '<p>bad token</p>'); exit; }
    header('Location: /account', true, 303);
} elseif ($path === '/logout' && $method === 'POST') {
    if (!token_ok()) { http_response_code(403); page('Refused', '<p>bad token</p>'); exit; }
    $_SESSION = [];
    if ($secure) {
        $p = session_get_cookie_params();
        setcookie(session_name(), '', ['expires' => 1, 'path' => $p['path'], 'httponly' => true, 'samesite' => 'Lax']);
    }
    session_destroy();
    header('Location: /login', true, 303);
} else {
    http_response_code(404);
    page('Not found', '');
}
