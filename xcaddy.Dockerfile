# Builds Caddy with latchkey from this checkout, the way Caddy's docs build
# plugins: a builder stage with xcaddy, then the plain Caddy image.
#
#   docker build -f xcaddy.Dockerfile -t caddy-latchkey .
#   docker run -p 80:80 -p 443:443 -v $PWD/Caddyfile:/etc/caddy/Caddyfile caddy-latchkey
FROM caddy:2.11.9-builder AS builder

# xcaddy builds a local checkout only under a module version: the
# pseudo-version of "no version" names this one, whatever the proxy holds.

COPY . /src/latchkey
RUN xcaddy build v2.11.9 \
	--with github.com/latchkeyhq/latchkey@v0.0.0-00010101000000-000000000000=/src/latchkey

FROM caddy:2.11.9

COPY --from=builder /usr/bin/caddy /usr/bin/caddy
