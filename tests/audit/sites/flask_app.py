"""tests/audit/sites/flask_app.py - a tiny Flask site with Flask's default
session (a signed cookie holding the data, itsdangerous), as the Flask
tutorial writes it: login puts the user in the session, logout clears it.
Run with /usr/bin/python3 (Debian's python3-flask) for test_audit.py:

    python3 flask_app.py PORT PASSWORD

What an auditor should find: the cookie cannot be revoked (a copy taken
before logout still works after it), no CSRF token, no Cache-Control on the
account page, no SameSite.  HttpOnly is Flask's default.
"""
import secrets
import sys

from flask import Flask, redirect, request, session

app = Flask(__name__)
app.secret_key = secrets.token_bytes(32)
PASSWORD = sys.argv[2]


@app.get("/")
def home():
    return '<p><a href="/login">Log in</a></p>'


@app.get("/login")
def login_form():
    return ('<form method="post" action="/login"><input name="user">'
            '<input name="password" type="password"><button>Log in</button></form>')


@app.post("/login")
def login():
    if request.form.get("user") == "alice" and secrets.compare_digest(
            request.form.get("password", ""), PASSWORD):
        session["user"] = "alice"
        return redirect("/account", 303)
    return redirect("/login?failed=1", 303)


@app.get("/account")
def account():
    if "user" not in session:
        return redirect("/login", 302)
    return (f"<p>Hello {session['user']}</p>"
            '<form method="post" action="/transfer"><input name="to">'
            '<input name="amount" type="number"><button>Send</button></form>'
            '<form method="post" action="/logout"><button>Log out</button></form>')


@app.post("/transfer")
def transfer():
    if "user" not in session:
        return redirect("/login", 302)
    return redirect("/account", 303)


@app.post("/logout")
def logout():
    session.clear()
    return redirect("/login", 303)


if __name__ == "__main__":
    import logging
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    print(f"flask: listening on http://127.0.0.1:{sys.argv[1]}", flush=True)
    app.run(host="127.0.0.1", port=int(sys.argv[1]), threaded=False)
