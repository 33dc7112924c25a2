package caddymodule

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/latchkeyhq/latchkey/internal/ops"
)

// A command reaches the store the running gateway uses: when the admin
// endpoint of its config answers and runs latchkey on the same storage
// setting, the command is sent there (as `caddy reload` sends a config) and
// runs inside the gateway, on its store, its secret and its caches. That
// way a relative store path, Caddy's data directory of another user, or a
// store file only Caddy's user may read all resolve as the server resolves
// them. Otherwise the command opens the store itself (see existingStore).
//
// Annotations on a command:
//   - annLocal: always runs here (it names its stores itself).
//   - annInputArg: the positional argument at that index is a file the
//     command reads; it is sent as the request body ("-" then stands for it).
//   - annOutputArg: the positional argument at that index is a path the
//     command writes; it is made absolute.
const (
	annLocal     = "latchkey.local"
	annInputArg  = "latchkey.input-arg"
	annOutputArg = "latchkey.output-arg"
)

// Headers of the admin route that runs a command.
const (
	hdrCLIArgs    = "X-Latchkey-Args"
	hdrCLIStorage = "X-Latchkey-Storage"
	hdrCLIStore   = "X-Latchkey-Store"
	hdrCLIError   = "X-Latchkey-Error"
	hdrCLIStderr  = "X-Latchkey-Stderr"
)

type runningAppKey struct{}

// runningApp is the gateway's app when the command runs inside it.
func runningApp(ctx context.Context) *App {
	if ctx == nil {
		return nil
	}
	app, _ := ctx.Value(runningAppKey{}).(*App)
	return app
}

// interruptible is the context of a long command: here, stopped by an
// interrupt; inside the gateway, by the admin request ending (the gateway's
// own signals are Caddy's).
func interruptible(c *cobra.Command) (context.Context, context.CancelFunc) {
	if runningApp(c.Context()) != nil {
		return context.WithCancel(c.Context())
	}
	return signal.NotifyContext(commandContext(c), os.Interrupt, syscall.SIGTERM)
}

// sendToGateway wraps every command that works on the store so that it is
// sent to the running gateway when there is one.
func sendToGateway(cmd *cobra.Command) {
	for _, sub := range cmd.Commands() {
		sendToGateway(sub)
	}
	if cmd.RunE == nil || cmd.Annotations[annLocal] != "" {
		return
	}
	run := cmd.RunE
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if runningApp(c.Context()) == nil {
			if sent, err := forward(c, args); sent {
				return err
			}
		}
		return run(c, args)
	}
}

// storageDigest names a storage setting as written in the config, before
// placeholders or relative paths are resolved: the same text on both sides
// is the same store, whatever directory or user each runs as.
func storageDigest(sc *StorageConfig) string {
	b, _ := json.Marshal(sc)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// forward sends the command to the admin endpoint of its config. sent is
// false when the command is to run here: no admin endpoint answers, or it
// runs no latchkey, or latchkey on another storage (said on stderr).
func forward(c *cobra.Command, args []string) (sent bool, err error) {
	c.SilenceUsage = true
	configFile, _ := c.Flags().GetString("config")
	adapter, _ := c.Flags().GetString("adapter")
	cfgJSON, _, _, err := caddycmd.LoadConfig(configFile, adapter)
	if err != nil {
		return false, nil // the command itself reports it
	}
	addr, ok := adminAddress(cfgJSON)
	if !ok {
		return false, nil
	}
	var cfg struct {
		Apps struct {
			Latchkey struct {
				Storage *StorageConfig `json:"storage"`
			} `json:"latchkey"`
		} `json:"apps"`
	}
	if len(cfgJSON) > 0 {
		if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
			return false, nil
		}
	}
	cmdArgs, body, err := forwardedArgs(c, args)
	if err != nil {
		return true, err
	}
	if body != nil {
		defer body.Close()
	}
	resp, err := adminRequest(commandContext(c), addr, cmdArgs, storageDigest(cfg.Apps.Latchkey.Storage), body)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return false, nil // no gateway there: open the store
		}
		// The gateway may have run the command: running it here too
		// could do it twice.
		return true, fmt.Errorf("sending the command to the Caddy at %s: %w", addr, err)
	}
	defer resp.Body.Close()
	stderr := c.ErrOrStderr()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound, http.StatusConflict:
		// Not latchkey, an older latchkey, or latchkey on another store.
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		fmt.Fprintf(os.Stderr, "latchkey: the Caddy at %s does not serve this config's store (%s); opening the store directly\n", addr, apiMessage(msg))
		return false, nil
	default:
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return true, fmt.Errorf("the Caddy at %s refused the command: HTTP %d: %s", addr, resp.StatusCode, apiMessage(msg))
	}
	// Where the direct path says it too (existingStore): on the process's
	// stderr, apart from the command's own messages.
	fmt.Fprintf(os.Stderr, "latchkey: store %s (through the admin API at %s)\n", resp.Header.Get(hdrCLIStore), addr)
	if _, err := io.Copy(c.OutOrStdout(), resp.Body); err != nil {
		return true, fmt.Errorf("reading the command's output from %s: %w", addr, err)
	}
	if s := decodeTrailer(resp.Trailer.Get(hdrCLIStderr)); s != "" {
		io.WriteString(stderr, s)
	}
	if msg := decodeTrailer(resp.Trailer.Get(hdrCLIError)); msg != "" {
		return true, errors.New(msg)
	}
	return true, nil
}

// forwardedArgs spells the command as the gateway will parse it: its path,
// the flags given (but --config and --adapter, which name this side's
// files), then its positional arguments, local paths made absolute or sent.
func forwardedArgs(c *cobra.Command, args []string) ([]string, io.ReadCloser, error) {
	// The path below `latchkey`, which is the root in the gateway.
	var out []string
	for x := c; x != nil && x.Name() != "latchkey"; x = x.Parent() {
		out = append([]string{x.Name()}, out...)
	}
	args = append([]string(nil), args...)
	var body io.ReadCloser
	if i, err := strconv.Atoi(c.Annotations[annOutputArg]); err == nil && i < len(args) && args[i] != "-" {
		abs, err := filepath.Abs(args[i])
		if err != nil {
			return nil, nil, err
		}
		args[i] = abs
	}
	if i, err := strconv.Atoi(c.Annotations[annInputArg]); err == nil && i < len(args) && args[i] != "-" {
		f, err := os.Open(args[i])
		if err != nil {
			return nil, nil, err
		}
		if fl := c.Flags().Lookup("format"); fl != nil && !fl.Changed {
			format, err := ops.ImportFormat(args[i], "")
			if err != nil {
				f.Close()
				return nil, nil, err
			}
			out = append(out, "--format="+format)
		}
		body, args[i] = f, "-"
	} else if err == nil && i < len(args) {
		body = io.NopCloser(c.InOrStdin())
	}
	c.Flags().Visit(func(f *pflag.Flag) {
		if f.Name == "config" || f.Name == "adapter" {
			return
		}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			for _, v := range sv.GetSlice() {
				out = append(out, "--"+f.Name+"="+v)
			}
			return
		}
		out = append(out, "--"+f.Name+"="+f.Value.String())
	})
	out = append(out, "--")
	return append(out, args...), body, nil
}

// adminRequest posts a command to the admin endpoint at addr.
func adminRequest(ctx context.Context, addr string, args []string, storage string, body io.Reader) (*http.Response, error) {
	if body == nil {
		body = http.NoBody
	}
	a, _ := json.Marshal(args)
	return adminDo(ctx, addr, http.MethodPost, "/latchkey/cli", body, http.Header{
		hdrCLIArgs:     {base64.RawURLEncoding.EncodeToString(a)},
		hdrCLIStorage:  {storage},
		"Content-Type": {"application/octet-stream"},
	})
}

// adminGet asks the admin endpoint at addr about the store of the config
// whose storage setting has the digest storage.
func adminGet(ctx context.Context, addr, path, storage string) (*http.Response, error) {
	return adminDo(ctx, addr, http.MethodGet, path, http.NoBody, http.Header{hdrCLIStorage: {storage}})
}

// adminDo reaches the admin endpoint at addr as Caddy's own commands do
// (TCP or a unix socket, with an Origin it accepts).
func adminDo(ctx context.Context, addr, method, path string, body io.Reader, hdr http.Header) (*http.Response, error) {
	na, err := caddy.ParseNetworkAddress(addr)
	if err != nil || na.PortRangeSize() > 1 {
		return nil, fmt.Errorf("invalid admin address %s: %v", addr, err)
	}
	origin := "http://" + na.JoinHostPort(0)
	if na.IsUnixNetwork() || na.IsFdNetwork() {
		origin = "http://127.0.0.1"
	}
	req, err := http.NewRequestWithContext(ctx, method, origin+path, body)
	if err != nil {
		return nil, err
	}
	if !na.IsUnixNetwork() && !na.IsFdNetwork() {
		req.Header.Set("Origin", origin)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	client := http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			d := net.Dialer{Timeout: 5 * time.Second}
			return d.DialContext(ctx, na.Network, na.JoinHostPort(0))
		},
	}}
	return client.Do(req)
}

// apiMessage is the error of an admin API answer ({"error": "…"}).
func apiMessage(b []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return e.Error
	}
	return strings.TrimSpace(string(b))
}

func encodeTrailer(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func decodeTrailer(s string) string {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return ""
	}
	return string(b)
}

// serveCLI runs one command sent by forward inside the gateway, on the
// running app: its output streams back as it is written; what it wrote on
// stderr and its error follow as trailers.
func serveCLI(w http.ResponseWriter, r *http.Request, app *App) error {
	if err := sameStorage(r, app); err != nil {
		return err
	}
	raw, err := base64.RawURLEncoding.DecodeString(r.Header.Get(hdrCLIArgs))
	var args []string
	if err == nil {
		err = json.Unmarshal(raw, &args)
	}
	if err != nil || len(args) == 0 {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("%s: not a base64url JSON list of arguments", hdrCLIArgs)}
	}
	root := &cobra.Command{Use: "latchkey", SilenceErrors: true, SilenceUsage: true}
	buildCommand(root)
	if sub, _, err := root.Find(args); err != nil || sub == root || sub.Annotations[annLocal] != "" {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("not a latchkey command the gateway runs: %s", strings.Join(args, " "))}
	}
	driver, target, err := app.storageTarget(caddy.NewReplacer())
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
	}
	// The admin server gives a request 10 s to be read; a command reads
	// its input as it works (an import of a million users takes minutes).
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	var stderr bytes.Buffer
	// Buffered, and sent as the buffer fills: a long export streams
	// instead of piling up in the gateway's memory.
	out := bufio.NewWriterSize(w, 32<<10)
	root.SetArgs(args)
	root.SetIn(r.Body)
	root.SetOut(out)
	root.SetErr(&limitedBuffer{buf: &stderr, max: 64 << 10})
	w.Header().Set("Trailer", hdrCLIError+", "+hdrCLIStderr)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set(hdrCLIStore, driver+" "+describeTarget(driver, target))
	w.WriteHeader(http.StatusOK)
	runErr := root.ExecuteContext(context.WithValue(r.Context(), runningAppKey{}, app))
	if err := out.Flush(); err != nil && runErr == nil {
		runErr = err
	}
	w.Header().Set(hdrCLIStderr, encodeTrailer(stderr.String()))
	if runErr != nil {
		w.Header().Set(hdrCLIError, encodeTrailer(runErr.Error()))
	}
	return nil
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	buf *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.buf.Len(); room > 0 {
		l.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// serveStore says where the running gateway's store is: for SQLite the
// file, resolved as the gateway resolved it (its working directory, its
// user's data directory); never a PostgreSQL DSN, which holds a password.
func serveStore(w http.ResponseWriter, r *http.Request, app *App) error {
	if err := sameStorage(r, app); err != nil {
		return err
	}
	driver, target, err := app.storageTarget(caddy.NewReplacer())
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
	}
	out := map[string]string{"driver": driver, "path": ""}
	if driver == "sqlite" {
		out["path"] = target
	}
	return reply(w, http.StatusOK, out)
}

// storeOfGateway makes a command that runs here open the SQLite file the
// running gateway of the same config uses, when its admin endpoint answers:
// a relative path, or the default under Caddy's data directory, then
// resolves as the gateway resolved it, not as this shell would.
func (env *cliEnv) storeOfGateway(cfgJSON []byte) {
	addr, ok := adminAddress(cfgJSON)
	if !ok || env.app.Storage != nil && env.app.Storage.Driver != "" && env.app.Storage.Driver != "sqlite" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := adminGet(ctx, addr, "/latchkey/store", storageDigest(env.app.Storage))
	if err != nil {
		return
	}
	defer resp.Body.Close()
	var st struct{ Driver, Path string }
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&st) != nil || st.Driver != "sqlite" || !filepath.IsAbs(st.Path) {
		return
	}
	env.app.Storage = &StorageConfig{Driver: "sqlite", Path: st.Path}
}

// adminAddress is where the config's admin endpoint listens (Caddy's
// default when the config names none, or there is no config); ok is false
// when the config turns it off or cannot be read.
func adminAddress(cfgJSON []byte) (addr string, ok bool) {
	var cfg struct {
		Admin struct {
			Disabled bool   `json:"disabled"`
			Listen   string `json:"listen"`
		} `json:"admin"`
	}
	if len(cfgJSON) > 0 && json.Unmarshal(cfgJSON, &cfg) != nil || cfg.Admin.Disabled {
		return "", false
	}
	if cfg.Admin.Listen == "" {
		return caddy.DefaultAdminListen, true
	}
	return cfg.Admin.Listen, true
}

// sameStorage refuses a command (or a question about the store) from a
// config whose storage setting is not the running gateway's: it is about
// another store.
func sameStorage(r *http.Request, app *App) error {
	if r.Header.Get(hdrCLIStorage) != storageDigest(app.Storage) {
		return caddy.APIError{HTTPStatus: http.StatusConflict, Err: errors.New("this gateway's latchkey storage setting differs from the command's config")}
	}
	return nil
}
