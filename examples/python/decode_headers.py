#!/usr/bin/env python3
"""Read the data latchkey hands the upstream, in a WSGI (or CGI) app.

X-Ticket-Data (a ticket's data) and X-Latchkey-Link-Data (a signed link's
"data" claim) are JSON objects with every non-ASCII character written as a
\\u escape, so the header value is plain ASCII: json.loads gives back the
original text ("L\\u00e9onard" -> "Léonard"). The gateway removes any copy a
client sent, so the values come from the gateway alone (as long as the app
is reachable only through it). A header that is absent means no data.

Run as a script, it decodes the headers from the CGI environment
(HTTP_X_TICKET_DATA, HTTP_X_LATCHKEY_LINK_DATA) and prints them as JSON.
"""

import json
import os


def latchkey_json(environ, header):
    """The JSON object in header ("X-Ticket-Data", …), {} when absent."""
    raw = environ.get("HTTP_" + header.upper().replace("-", "_"), "")
    return json.loads(raw) if raw else {}


def ticket_data(environ):
    return latchkey_json(environ, "X-Ticket-Data")


def link_data(environ):
    return latchkey_json(environ, "X-Latchkey-Link-Data")


def app(environ, start_response):
    """A WSGI app greeting the ticket's guest: wsgiref.simple_server can serve it."""
    name = ticket_data(environ).get("first_name", "guest")
    body = ("Bonjour " + name + " (user " + environ.get("HTTP_X_USER_ID", "-") + ")\n").encode("utf-8")
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [body]


if __name__ == "__main__":
    out = {"ticket": ticket_data(os.environ), "link": link_data(os.environ)}
    print(json.dumps(out, ensure_ascii=False, sort_keys=True))
