// Package caddymodule is latchkey's Caddy glue: module registration,
// Caddyfile parsing, the app's lifecycle, admin routes and CLI commands. It
// turns configuration into plain values and hands them to internal/….
package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/latchkeyhq/latchkey/internal/audit"
	"github.com/latchkeyhq/latchkey/internal/gate"
	"github.com/latchkeyhq/latchkey/internal/keys"
	"github.com/latchkeyhq/latchkey/internal/link"
	"github.com/latchkeyhq/latchkey/internal/metrics"
	"github.com/latchkeyhq/latchkey/internal/ops"
	"github.com/latchkeyhq/latchkey/internal/password"
	"github.com/latchkeyhq/latchkey/internal/session"
	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/store/postgres"
	"github.com/latchkeyhq/latchkey/internal/store/sqlite"
	"github.com/latchkeyhq/latchkey/internal/ticket"
	"github.com/latchkeyhq/latchkey/internal/web"
)

func init() {
	caddy.RegisterModule(App{})
}

// stores shares one open store per database between the configs that name
// it. A config reload provisions the new app before the old one is cleaned
// up; both then hold the same handle instead of racing to reopen the file.
// This is the same pattern Caddy's own modules use for process-wide
// resources (caddy.UsagePool).
var stores = caddy.NewUsagePool()

// minSecretLen keeps a configured secret from being guessable.
const minSecretLen = 32

// App is the latchkey app: it owns the store, the signing secret, the audit
// writer and the page templates shared by every latchkey handler, and keeps
// them across config reloads.
type App struct {
	// Where latchkey keeps its state. Default: SQLite at
	// <Caddy data dir>/latchkey/latchkey.db.
	Storage *StorageConfig `json:"storage,omitempty"`
	// The secret that keys every hash and signature. Placeholders such as
	// {env.LATCHKEY_SECRET} are expanded. Default: generated on first start
	// and kept in a 0600 file beside the store (latchkey.secret beside
	// latchkey.db), never in the store itself.
	Secret string `json:"secret,omitempty"`
	// A file holding the secret (surrounding white space is ignored).
	SecretFile string `json:"secret_file,omitempty"`
	// Secrets rotated out of secret or secret_file, newest first
	// (placeholders expanded, each at least 32 characters): sessions,
	// invite codes, ticket passwords and links made under them are still
	// accepted until they are removed from here; everything new is made
	// under the secret. A generated secret is rotated with `caddy latchkey
	// secret rotate`, which keeps its previous secrets in a file beside it.
	PreviousSecrets []string `json:"previous_secrets,omitempty"`
	// A directory whose files replace the embedded page templates of the
	// same name.
	Templates string `json:"templates,omitempty"`
	// Batching of audit records.
	Audit *AuditConfig `json:"audit,omitempty"`
	// Keys that sign and verify links: the first signs, all verify. Default:
	// one HS256 key, kid "default", derived from the secret.
	LinkKeys []LinkKeyConfig `json:"link_keys,omitempty"`
	// Hashing of ticket passwords a person chose (argon2id).
	Argon2 *Argon2Config `json:"argon2,omitempty"`
	// The mail server invites are sent through; none by default.
	SMTP *SMTPConfig `json:"smtp,omitempty"`
	// How long sessions, IP addresses and audit records are kept, and how
	// often the janitor applies it. Default: ended sessions 7d, addresses
	// 30d, audit records for ever, hourly.
	Retention *RetentionConfig `json:"retention,omitempty"`

	store    store.Store
	reqStore store.Store      // store as the handlers use it, timed for metrics
	metrics  *metrics.Metrics // nil without a metrics registry
	sessions *session.Cache   // shared by every handler, so a logout holds everywhere
	poolKey  string
	secret   []byte
	previous [][]byte // rotated out, still accepted; newest first
	audit    *audit.Writer
	pages    *web.Pages
	mailer   *ops.OutboxMailer // nil without smtp
	links    *link.KeyRing
	tickets  *ticket.Hasher
	// passwords hashes users' passwords, with concurrent hashing bounded
	// for the whole app: a flood of logins cannot take every core.
	passwords *password.Hasher
	stop      context.CancelFunc // the janitor
	stopped   chan struct{}      // closed when the janitor has stopped
	logger    *zap.Logger
	// sites are the handlers' sites, registered as they provision; strip
	// removes the identity headers of every handler, on every route.
	sites []ops.SiteConf
	strip *gate.HeaderStripper
	names []string
}

// LinkKeyConfig is one key of the link key ring.
type LinkKeyConfig struct {
	ID string `json:"kid"`
	// "hs256" or "ed25519".
	Alg string `json:"alg"`
	// hs256: the HMAC key (placeholders expanded); empty derives it from
	// the gateway secret and the kid.
	Secret string `json:"secret,omitempty"`
	// ed25519: a PKCS#8 PEM private key file ("PRIVATE KEY"); the key signs
	// (when first) and verifies.
	PrivateKeyFile string `json:"private_key_file,omitempty"`
	// ed25519, instead of PrivateKeyFile: a PKIX PEM public key file
	// ("PUBLIC KEY", as `openssl pkey -pubout` writes it). The key only
	// verifies, for links an app signs itself with the private half, which
	// the gateway never sees; it cannot be the first key.
	PublicKeyFile string `json:"public_key_file,omitempty"`
}

// linkKeyRing builds the key ring from the config. Keys derived from the
// secret are derived from each previous secret too, under the same kid and
// after every current key, so that the current one signs and links signed
// before a rotation still verify.
func (a *App) linkKeyRing(repl *caddy.Replacer) (*link.KeyRing, error) {
	ks, derived, err := a.configuredLinkKeys(repl)
	if err != nil {
		return nil, err
	}
	for _, p := range a.previous {
		for _, kid := range derived {
			ks = append(ks, link.HS256Key(p, kid))
		}
	}
	return link.NewKeyRing(ks...)
}

// configuredLinkKeys are the link keys of the config under the current
// secret, and the kids of those derived from it.
func (a *App) configuredLinkKeys(repl *caddy.Replacer) (ks []link.Key, derived []string, err error) {
	if len(a.LinkKeys) == 0 {
		return []link.Key{link.HS256Key(a.secret, "default")}, []string{"default"}, nil
	}
	for _, kc := range a.LinkKeys {
		switch kc.Alg {
		case "hs256":
			if kc.Secret == "" {
				ks = append(ks, link.HS256Key(a.secret, kc.ID))
				derived = append(derived, kc.ID)
				continue
			}
			s := repl.ReplaceKnown(kc.Secret, "")
			if len(s) < minSecretLen {
				return nil, nil, fmt.Errorf("latchkey link key %q: secret of %d characters is too short; use at least %d", kc.ID, len(s), minSecretLen)
			}
			ks = append(ks, link.Key{ID: kc.ID, Alg: "HS256", Secret: []byte(s)})
		case "ed25519":
			switch {
			case kc.PrivateKeyFile != "" && kc.PublicKeyFile != "":
				return nil, nil, fmt.Errorf("latchkey link key %q: give private_key_file or public_key_file, not both", kc.ID)
			case kc.PrivateKeyFile == "" && kc.PublicKeyFile == "":
				return nil, nil, fmt.Errorf("latchkey link key %q: ed25519 needs private_key_file (signs and verifies) or public_key_file (verifies only)", kc.ID)
			case kc.PublicKeyFile != "" && len(ks) == 0:
				return nil, nil, fmt.Errorf("latchkey link key %q: the first link key signs the gateway's links, but this one is verify-only (public_key_file); put a key that can sign (hs256, or ed25519 with a private key) first", kc.ID)
			}
			file := kc.PrivateKeyFile
			if kc.PublicKeyFile != "" {
				file = kc.PublicKeyFile
			}
			path := repl.ReplaceKnown(file, "")
			pemBytes, err := os.ReadFile(path)
			if err != nil {
				return nil, nil, fmt.Errorf("latchkey link key %q: %w", kc.ID, err)
			}
			if kc.PublicKeyFile != "" {
				pub, err := link.ParseEd25519PublicKeyPEM(pemBytes)
				if err != nil {
					return nil, nil, fmt.Errorf("latchkey link key %q from %s: %w", kc.ID, path, err)
				}
				ks = append(ks, link.Ed25519PublicKey(kc.ID, pub))
				continue
			}
			priv, err := link.ParseEd25519PrivateKeyPEM(pemBytes)
			if err != nil {
				return nil, nil, fmt.Errorf("latchkey link key %q from %s: %w", kc.ID, path, err)
			}
			ks = append(ks, link.Ed25519Key(kc.ID, priv))
		default:
			return nil, nil, fmt.Errorf("latchkey link key %q: unknown algorithm %q (want hs256 or ed25519)", kc.ID, kc.Alg)
		}
	}
	return ks, derived, nil
}

// StorageConfig names the database.
type StorageConfig struct {
	// "sqlite" (the default) or "postgres".
	Driver string `json:"driver,omitempty"`
	// For sqlite: the database file. A relative path is taken from the
	// directory Caddy runs in.
	Path string `json:"path,omitempty"`
	// For postgres: the DSN, a postgres:// URL or libpq key=value pairs.
	// Placeholders such as {env.LATCHKEY_PG_DSN} are expanded. It holds a
	// password, so it is never logged.
	DSN string `json:"dsn,omitempty"`
	// For postgres, instead of DSN: a file holding the DSN (surrounding
	// white space is ignored).
	DSNFile string `json:"dsn_file,omitempty"`
}

// AuditConfig tunes the audit writer; zero values take its defaults.
type AuditConfig struct {
	QueueSize     int            `json:"queue_size,omitempty"`
	BatchSize     int            `json:"batch_size,omitempty"`
	FlushInterval caddy.Duration `json:"flush_interval,omitempty"`
	// How accepted session requests are audited: "activity" (the default)
	// records a session's first request from each client (IP and user
	// agent); "every_request" records each one.
	Sessions string `json:"sessions,omitempty"`
}

// RetentionConfig is how long latchkey keeps what it records about people
// (see ops.Retention); zero values take the defaults.
type RetentionConfig struct {
	// How often the janitor runs. Default: 1h; at least 1m.
	Every caddy.Duration `json:"every,omitempty"`
	// How long an IP address is kept: a session's from its start, a
	// login's from the login, an audit record's from the attempt; then it
	// is blanked. Default: 30d; at least 1h.
	RetainIP caddy.Duration `json:"retain_ip,omitempty"`
	// How long a session is kept once it has expired or been revoked.
	// Default: 7d.
	RetainSessions caddy.Duration `json:"retain_sessions,omitempty"`
	// How long audit records are kept; at least retain_ip. Default: for
	// ever.
	RetainAudit caddy.Duration `json:"retain_audit,omitempty"`
}

// retention is c as ops takes it; a nil c is the defaults.
func (c *RetentionConfig) retention() ops.Retention {
	if c == nil {
		return ops.Retention{}
	}
	return ops.Retention{
		Every: time.Duration(c.Every), IPs: time.Duration(c.RetainIP),
		Sessions: time.Duration(c.RetainSessions), Audit: time.Duration(c.RetainAudit),
	}
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "latchkey",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision opens (or joins) the store and loads the secret.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	repl := caddy.NewReplacer()
	driver, target, err := a.storageTarget(repl)
	if err != nil {
		return err
	}
	a.poolKey = storePoolKey(driver, target)
	val, _, err := stores.LoadOrNew(a.poolKey, func() (caddy.Destructor, error) {
		// Not ctx: the store outlives this config when a reload shares it.
		st, err := openStore(context.Background(), driver, target)
		if err != nil {
			return nil, err
		}
		a.logger.Info("opened store", zap.String("driver", driver), zap.String("path", describeTarget(driver, target)))
		return pooledStore{st}, nil
	})
	if err != nil {
		a.poolKey = ""
		return err
	}
	a.store = val.(pooledStore).Store
	a.sessions = session.NewCache(0)
	a.strip = gate.NewHeaderStripper(gate.IdentityHeaders(), gate.ProtectedPrefixes)
	if a.secret, err = a.loadSecret(ctx, repl, a.store); err != nil {
		return err
	}
	if a.passwords, err = password.NewHasher(a.Argon2.passwordParams(), 0); err != nil {
		return fmt.Errorf("latchkey argon2: %w", err)
	}
	a.logSecrets()
	if a.tickets, err = ticket.NewHasher(a.secret, a.Argon2.params(), a.previous...); err != nil {
		return fmt.Errorf("latchkey argon2: %w", err)
	}
	if a.links, err = a.linkKeyRing(repl); err != nil {
		return err
	}
	if a.mailer, err = a.newMailer(repl, a.store); err != nil {
		return err
	}
	if a.pages, err = web.New(repl.ReplaceKnown(a.Templates, "")); err != nil {
		return fmt.Errorf("latchkey templates: %w", err)
	}
	var ac AuditConfig
	if a.Audit != nil {
		ac = *a.Audit
	}
	a.audit = audit.NewWriter(a.store, audit.Options{
		QueueSize:     ac.QueueSize,
		BatchSize:     ac.BatchSize,
		FlushInterval: time.Duration(ac.FlushInterval),
		Sessions:      ac.Sessions,
	}, audit.NewUAParser(4096), a.logger.Named("audit"))
	a.reqStore = a.store
	if err := a.provisionMetrics(ctx); err != nil {
		return err
	}
	return nil
}

// provisionMetrics registers latchkey's caddy_latchkey_* metrics on the
// config's metrics registry, which the admin endpoint's /metrics (and the
// metrics handler) serve. Caddy makes a registry for every config load, so
// a reload registers the new app's collectors on a new registry while the
// old config drains with its own: nothing is registered twice.
func (a *App) provisionMetrics(ctx caddy.Context) error {
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return nil
	}
	m := metrics.New()
	if err := m.Register(reg); err != nil {
		return fmt.Errorf("latchkey metrics: %w", err)
	}
	if err := metrics.RegisterReplacing(reg, metrics.NewAuditCollector(a.audit)); err != nil {
		return fmt.Errorf("latchkey metrics: %w", err)
	}
	if a.mailer != nil {
		if err := metrics.RegisterReplacing(reg, metrics.NewOutboxCollector(a.mailer.QueueDepth)); err != nil {
			return fmt.Errorf("latchkey metrics: %w", err)
		}
	}
	a.metrics = m
	a.reqStore = m.Store(a.store)
	return nil
}

// Validate checks settings that need no I/O.
func (a *App) Validate() error {
	if a.Secret != "" && a.SecretFile != "" {
		return errors.New("secret and secret_file are mutually exclusive")
	}
	if len(a.PreviousSecrets) > 0 && a.Secret == "" && a.SecretFile == "" {
		return errors.New("previous_secrets needs secret or secret_file: a generated secret is rotated with `caddy latchkey secret rotate`, which keeps its previous secrets itself")
	}
	if len(a.PreviousSecrets) > keys.MaxPreviousSecrets {
		return fmt.Errorf("previous_secrets: %d secrets, more than the %d latchkey checks; drop the oldest once what was made under them has expired", len(a.PreviousSecrets), keys.MaxPreviousSecrets)
	}
	if a.Audit != nil && !audit.ValidSessions(a.Audit.Sessions) {
		return fmt.Errorf("audit sessions %q: want %q or %q", a.Audit.Sessions, audit.SessionsActivity, audit.SessionsEveryRequest)
	}
	if err := a.Retention.retention().Validate(); err != nil {
		return err
	}
	if a.Storage != nil {
		return a.Storage.validate(a.Secret != "" || a.SecretFile != "")
	}
	return nil
}

// registerSite records a handler's site; handlers naming one site share one
// *site.Site, with their hosts pooled and one origin.
func (a *App) registerSite(h *Handler) (ops.SiteConf, error) {
	s, err := h.newSite()
	if err != nil {
		return ops.SiteConf{}, fmt.Errorf("latchkey handler: %w", err)
	}
	for _, sc := range a.sites {
		if sc.Site.Name == s.Name {
			if err := sc.Site.Join(s); err != nil {
				return ops.SiteConf{}, fmt.Errorf("latchkey handler: %w", err)
			}
			s = sc.Site
			break
		}
	}
	conf := h.siteConf(s)
	a.sites = append(a.sites, conf)
	return conf, nil
}

// operations are the operations on the app's store, for the admin API (on
// every site) and a handler's pages (on its own).
func (a *App) operations(sites []ops.SiteConf) *ops.Ops {
	o := &ops.Ops{
		Store: a.store, Now: time.Now, Secret: a.secret, Ring: a.links, TicketHasher: a.tickets,
		Cache: a.sessions, Sites: sites,
	}
	if a.mailer != nil { // not a typed nil in the interface
		o.Mailer = a.mailer
	}
	return o
}

// protect adds a handler's identity header names to the ones every handler
// strips. Handlers provision before any serves, so the set is complete by
// the first request.
func (a *App) protect(names ...string) {
	for _, n := range names {
		if n != "" {
			a.names = append(a.names, n)
		}
	}
	*a.strip = *gate.NewHeaderStripper(gate.IdentityHeaders(a.names...), gate.ProtectedPrefixes)
}

// janitorEvery is how often expired tickets are marked.
const janitorEvery = time.Minute

// Start runs the janitor, which marks expired tickets every minute and
// applies the retention (deleting and blanking) at start and then on its
// schedule.
func (a *App) Start() error {
	// Every handler has provisioned by now, so each site has all its
	// origins: one that mails URLs must have one.
	for _, sc := range a.sites {
		if a.mailer != nil && (sc.Invites || sc.Links) && sc.Site.Origin == "" {
			return fmt.Errorf("latchkey site %q has no origin, but mails links to it (smtp is set and its route takes invites or links): set `origin https://…` in its latchkey handler — URLs in mails never come from a request's Host", sc.Site.Name)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.stop = cancel
	if a.mailer != nil {
		a.mailer.Start(ctx) // sends the outbox; Stop waits for the mail in flight
	}
	// Sessions are served from memory, kept right by the store's fan-out
	// of revocations (other gateways, the CLI).
	var lastWarn atomic.Int64
	go a.sessions.Follow(ctx, a.store, session.FollowConfig{OnError: func(err error) {
		if ctx.Err() == nil && time.Since(time.Unix(0, lastWarn.Load())) > time.Minute {
			lastWarn.Store(time.Now().UnixNano())
			a.logger.Warn("reading revocations from the store; sessions are checked in the store until it answers", zap.Error(err))
		}
	}})
	a.stopped = make(chan struct{})
	go func() {
		defer close(a.stopped)
		t := time.NewTicker(janitorEvery)
		defer t.Stop()
		retention := a.Retention.retention()
		var nextRetain time.Time // zero: at once
		for {
			// A first run over a long backlog may take minutes; tickets
			// are marked after it (a claim checks expiry itself).
			if now := time.Now(); !now.Before(nextRetain) {
				nextRetain = now.Add(retention.WithDefaults().Every)
				a.retain(ctx, retention, now)
			}
			if n, err := a.store.ExpireTickets(ctx, time.Now()); err != nil && ctx.Err() == nil {
				a.logger.Warn("marking expired tickets", zap.Error(err))
			} else if n > 0 {
				a.logger.Info("marked expired tickets", zap.Int("count", n))
			}
			// Every gateway has read a change within seconds; an hour is
			// ample.
			if _, err := a.store.PruneChanges(ctx, time.Now().Add(-time.Hour)); err != nil && ctx.Err() == nil {
				a.logger.Warn("pruning the revocation fan-out", zap.Error(err))
			}
			// The longest throttle window is a day at most in practice.
			if _, err := a.store.PruneThrottles(ctx, time.Now().Add(-24*time.Hour)); err != nil && ctx.Err() == nil {
				a.logger.Warn("pruning throttle counts", zap.Error(err))
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return nil
}

// retain runs the retention janitor once at now and logs what it did.
func (a *App) retain(ctx context.Context, r ops.Retention, now time.Time) {
	run, err := ops.RunJanitor(ctx, a.store, r, now)
	fields := []zap.Field{
		zap.Int("sessions_deleted", run.SessionsDeleted),
		zap.Int("session_ips_blanked", run.SessionIPsBlanked),
		zap.Int("login_ips_blanked", run.LoginIPsBlanked),
		zap.Int("audit_ips_blanked", run.AuditIPsBlanked),
		zap.Int("audit_deleted", run.AuditDeleted),
		zap.Duration("took", time.Duration(run.Took)),
	}
	switch {
	case err == nil:
		a.logger.Info("retention janitor ran", fields...)
	case ctx.Err() == nil:
		// What the finished batches did stays done; the next run goes on.
		a.logger.Warn("retention janitor failed", append(fields, zap.Error(err))...)
	}
}

// Stop implements caddy.App. The store outlives Stop: during a reload the
// new config's handlers keep using it. Stop waits for the janitor, whose
// batch in flight is short.
func (a *App) Stop() error {
	if a.stop != nil {
		a.stop()
	}
	if a.stopped != nil {
		<-a.stopped
	}
	if a.mailer != nil {
		a.mailer.Wait()
	}
	return nil
}

// Cleanup flushes the audit trail and lets go of the store; the last config
// to let go closes it.
func (a *App) Cleanup() error {
	var errs []error
	if a.audit != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		errs = append(errs, a.audit.Close(ctx))
		cancel()
	}
	if a.poolKey != "" {
		_, err := stores.Delete(a.poolKey)
		errs = append(errs, err)
		a.poolKey = ""
	}
	return errors.Join(errs...)
}

// storageTarget resolves the configured storage to a driver and an absolute
// target, so that two configs naming one file share one handle.
func (a *App) storageTarget(repl *caddy.Replacer) (driver, target string, err error) {
	var sc StorageConfig
	if a.Storage != nil {
		sc = *a.Storage
	}
	driver = sc.Driver
	if driver == "" {
		driver = "sqlite"
	}
	switch driver {
	case "sqlite":
		path := repl.ReplaceKnown(sc.Path, "")
		if path == "" {
			path = DefaultDBPath()
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return "", "", fmt.Errorf("latchkey storage: resolving %q: %w", path, err)
		}
		return driver, abs, nil
	case "postgres":
		dsn, err := sc.postgresDSN(repl)
		if err != nil {
			return "", "", err
		}
		return driver, dsn, nil
	}
	return "", "", fmt.Errorf("latchkey storage: unknown driver %q (want sqlite or postgres)", driver)
}

// DefaultDBPath is where the store lives when none is configured.
func DefaultDBPath() string {
	return filepath.Join(caddy.AppDataDir(), "latchkey", "latchkey.db")
}

func openStore(ctx context.Context, driver, target string) (store.Store, error) {
	switch driver {
	case "sqlite":
		return sqlite.Open(ctx, target)
	case "postgres":
		return postgres.Open(ctx, target)
	}
	return nil, fmt.Errorf("latchkey storage: unknown driver %q", driver)
}

// loadSecret returns the secret, and keeps the previous secrets still
// accepted (previous_secrets, or those a rotation of the generated secret
// kept) in a.previous.
func (a *App) loadSecret(ctx context.Context, repl *caddy.Replacer, st store.Store) ([]byte, error) {
	a.previous = nil
	var s string
	switch {
	case a.Secret != "":
		s = repl.ReplaceKnown(a.Secret, "")
		if s == "" {
			return nil, fmt.Errorf("latchkey secret: %q expands to nothing", a.Secret)
		}
	case a.SecretFile != "":
		path := repl.ReplaceKnown(a.SecretFile, "")
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("latchkey secret_file: %w", err)
		}
		s = strings.TrimSpace(string(b))
	default:
		// Generated on first start and kept in a 0600 file beside the
		// store, never in it; a secret an older version kept in the store
		// is moved to that file.
		driver, target, err := a.storageTarget(repl)
		if err != nil {
			return nil, err
		}
		path, err := generatedSecretPath(driver, target)
		if err != nil {
			return nil, err
		}
		cur, err := keys.LoadGeneratedSecret(ctx, path, metaSecret{st})
		if err != nil {
			return nil, err
		}
		prev, err := keys.ReadPreviousSecrets(keys.PreviousSecretsPath(path))
		if err != nil {
			return nil, err
		}
		// A rotation interrupted between its two writes leaves the
		// secret in both files.
		a.previous = keys.Distinct(cur, prev)
		return cur, nil
	}
	if len(s) < minSecretLen {
		return nil, fmt.Errorf("latchkey secret: %d characters is too short; use at least %d random characters", len(s), minSecretLen)
	}
	var prev [][]byte
	for i, p := range a.PreviousSecrets {
		v := repl.ReplaceKnown(p, "")
		switch {
		case v == "":
			return nil, fmt.Errorf("latchkey previous_secrets: number %d expands to nothing", i+1)
		case len(v) < minSecretLen:
			return nil, fmt.Errorf("latchkey previous_secrets: number %d is %d characters, too short to be a secret; use at least %d", i+1, len(v), minSecretLen)
		}
		prev = append(prev, []byte(v))
	}
	a.previous = keys.Distinct([]byte(s), prev)
	return []byte(s), nil
}

// logSecrets says which secrets the gateway uses, by fingerprint, so that
// an operator can see that a reload took up a rotation.
func (a *App) logSecrets() {
	prev := make([]string, len(a.previous))
	for i, p := range a.previous {
		prev[i] = keys.Fingerprint(p)
	}
	a.logger.Info("secret loaded", zap.String("fingerprint", keys.Fingerprint(a.secret)), zap.Strings("previous", prev))
}

// pooledStore lets the usage pool close the store when its last user goes.
type pooledStore struct{ store.Store }

func (p pooledStore) Destruct() error { return p.Store.Close() }

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.Validator    = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
