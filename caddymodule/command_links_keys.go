package caddymodule

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/latchkeyhq/latchkey/internal/link"
	"github.com/latchkeyhq/latchkey/internal/ops"
)

func init() { moreLinksCommands = append(moreLinksCommands, linksKeysCommand) }

// linkKeyJSON is one key of the ring as `links keys --json` prints it.
// Every record has every field, "" where it does not apply, so that a
// script reads them all the same way.
type linkKeyJSON struct {
	KID string `json:"kid"`
	// Alg is the JOSE alg a token signed with the key names: HS256 or EdDSA.
	Alg string `json:"alg"`
	// Use is "signs" (the gateway's own links), "verifies" or "previous"
	// (a kid's key under an earlier gateway secret).
	Use string `json:"use"`
	// Secret is an HS256 key, base64url without padding: decoded, the
	// bytes an app's HMAC-SHA256 is keyed with.
	Secret string `json:"secret"`
	// PublicKey is an Ed25519 public key, base64url without padding (the
	// raw 32 bytes, as a JWK's "x"); PublicKeyPEM is the same key as a
	// PKIX "PUBLIC KEY" PEM block.
	PublicKey    string `json:"public_key"`
	PublicKeyPEM string `json:"public_key_pem"`
}

func linkKeyRecords(ring *link.KeyRing) ([]linkKeyJSON, error) {
	ks := ring.Keys()
	out := make([]linkKeyJSON, 0, len(ks))
	for _, k := range ks {
		r := linkKeyJSON{KID: k.ID, Alg: k.Alg, Use: k.Use}
		switch k.Alg {
		case link.AlgHS256:
			r.Secret = base64.RawURLEncoding.EncodeToString(k.Secret)
		case link.AlgEdDSA:
			der, err := x509.MarshalPKIXPublicKey(k.Public)
			if err != nil {
				return nil, fmt.Errorf("link key %q: %w", k.ID, err)
			}
			r.PublicKey = base64.RawURLEncoding.EncodeToString(k.Public)
			r.PublicKeyPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
		}
		out = append(out, r)
	}
	return out, nil
}

// linksKeysCommand is `caddy latchkey links keys`: the link key ring of the
// config, with what an app needs to sign links the gateway accepts.
func linksKeysCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "keys [--json]",
		Short: "Lists the link keys: kid, algorithm, use, and the key apps sign links with",
		Long: `
Lists the config's link key ring (link_keys, or the default HS256 key
"default" derived from the gateway secret), in the order the gateway uses
it: the first key signs the gateway's own links; every key verifies.

  USE       signs: the key the gateway signs with
            verifies: another key; tokens naming its kid are checked with it
            previous: a kid's key under an earlier gateway secret, still
                      accepted; move apps to the kid's first key

For an HS256 key it prints the key itself, base64url without padding: an
app decodes it and signs links with HMAC-SHA256 under that kid (see
docs/links.md). It is a secret: whoever has it can sign a link for any
user. For an Ed25519 key it prints the public key only (base64url of its
32 bytes, and with --json also as PEM); the gateway's JWKS at
/.latchkey/jwks.json serves the same.

--json prints an array of records with the keys kid, alg, use, secret,
public_key and public_key_pem, each a string ("" when it does not apply).`,
		Args: cobra.NoArgs,
		RunE: withOps(func(c *cobra.Command, o *ops.Ops, _ []string) error {
			ring := o.Ring
			if ring == nil {
				if o.LoadRing == nil {
					return fmt.Errorf("no link keys in this config")
				}
				var err error
				if ring, err = o.LoadRing(); err != nil {
					return err
				}
			}
			recs, err := linkKeyRecords(ring)
			if err != nil {
				return err
			}
			if wantJSON(c) {
				return writeJSON(c.OutOrStdout(), recs)
			}
			tw := newTable(c.OutOrStdout())
			fmt.Fprintln(tw, "KID\tALG\tUSE\tKEY")
			for _, r := range recs {
				key := "secret " + r.Secret
				if r.Alg == link.AlgEdDSA {
					key = "public " + r.PublicKey
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", cell(r.KID), r.Alg, r.Use, key)
			}
			return tw.Flush()
		}),
	}
}
