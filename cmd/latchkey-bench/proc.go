package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/latchkeyhq/latchkey/internal/loadrig"
)

// caddyProc is one bin/caddy process.
type caddyProc struct {
	name string
	// count runs a one-integer query on its latchkey store (nil for a
	// plain Caddy): the SQLite file's, or the PostgreSQL database's.
	count func(ctx context.Context, query string, args ...any) (int64, error)
	pg    *pgServer // the server of its store, if PostgreSQL
	cmd   *exec.Cmd
	log   string
	done  chan struct{}
	err   error // from Wait, once done is closed

	// Read just before it is stopped.
	HWMKiB, RSSKiB int64
	CPU            time.Duration
	hwmByGroup     []float64 // MB
}

// startCaddy writes cfg's Caddyfile into dir and runs caddyBin on it, its
// output going to a log file there. It returns once every port answers
// TCP, or fails with the log's tail.
func startCaddy(caddyBin, dir, name string, cfg loadrig.Process) (*caddyProc, error) {
	cfgPath := filepath.Join(dir, name+".Caddyfile")
	if err := os.WriteFile(cfgPath, []byte(cfg.Caddyfile()), 0o600); err != nil {
		return nil, err
	}
	p := &caddyProc{name: name, log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	logf, err := os.Create(p.log)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	p.cmd = exec.Command(caddyBin, "run", "--config", cfgPath, "--adapter", "caddyfile")
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	home := filepath.Join(dir, name+"-home")
	p.cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, "config"), "XDG_DATA_HOME="+filepath.Join(home, "data"))
	// If the harness dies, so does its Caddy.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", caddyBin, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range cfg.Sites {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port))
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-p.done:
				return nil, fmt.Errorf("caddy %s exited at start (%v):\n%s", name, p.err, tail(p.log))
			default:
			}
			if time.Now().After(deadline) {
				p.kill()
				return nil, fmt.Errorf("caddy %s does not listen on %s after 30s:\n%s", name, addr, tail(p.log))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return p, nil
}

// sample reads the process's peak and current RSS and its CPU time.
func (p *caddyProc) sample() error {
	pid := p.cmd.Process.Pid
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		switch k {
		case "VmHWM":
			p.HWMKiB = n
		case "VmRSS":
			p.RSSKiB = n
		}
	}
	if p.HWMKiB == 0 {
		return fmt.Errorf("no VmHWM in /proc/%d/status", pid)
	}
	p.CPU, err = procCPU(pid)
	return err
}

// stop asks Caddy to stop gracefully (SIGINT: the audit writer flushes on
// Cleanup) and waits for it; after 20s it is killed.
func (p *caddyProc) stop() error {
	select {
	case <-p.done:
		return fmt.Errorf("caddy %s had already exited (%v):\n%s", p.name, p.err, tail(p.log))
	default:
	}
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
		var ee *exec.ExitError
		if p.err != nil && !errors.As(p.err, &ee) {
			return p.err
		}
		if p.err != nil {
			return fmt.Errorf("caddy %s: %v:\n%s", p.name, p.err, tail(p.log))
		}
		return nil
	case <-time.After(20 * time.Second):
		p.kill()
		return fmt.Errorf("caddy %s did not stop within 20s of SIGINT; killed", p.name)
	}
}

func (p *caddyProc) kill() {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Kill()
		<-p.done
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// procStat is the fields of /proc/<pid>/stat after the command name: f[0]
// is the state (field 3, counted from the pid as 1), f[1] the parent's pid.
func procStat(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	// The command name can hold spaces; the fields start after its ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: no ')' after the command name", pid)
	}
	return strings.Fields(s[i+1:]), nil
}

// procCPU is a process's user and system CPU time, from /proc/<pid>/stat.
func procCPU(pid int) (time.Duration, error) {
	f, err := procStat(pid)
	if err != nil {
		return 0, err
	}
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields after the command name, want at least 13", pid, len(f))
	}
	// Fields 14 and 15 (utime, stime), counted from the pid as 1.
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return ticks(ut + st), nil
}

// ticks converts clock ticks (USER_HZ, 100 on Linux) to a duration.
func ticks(n int64) time.Duration { return time.Duration(n) * 10 * time.Millisecond }

// machineCPU is the busy and total CPU time of the whole machine so far,
// from /proc/stat.
func machineCPU() (busy, total time.Duration) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0, 0
	}
	fs := strings.Fields(sc.Text())
	if len(fs) < 8 || fs[0] != "cpu" {
		return 0, 0
	}
	var v [10]int64
	for i := 1; i < len(fs) && i <= 10; i++ {
		v[i-1], _ = strconv.ParseInt(fs[i], 10, 64)
	}
	// user nice system idle iowait irq softirq steal (guest is in user).
	b := v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
	return ticks(b), ticks(b + v[3] + v[4])
}

// wrkResult is one wrk run, as bench.lua's done() reports it.
type wrkResult struct {
	DurationUS int64 `json:"duration_us"`
	Requests   int64 `json:"requests"`
	Bytes      int64 `json:"bytes"`
	Errors     struct {
		Connect int64 `json:"connect"`
		Read    int64 `json:"read"`
		Write   int64 `json:"write"`
		Status  int64 `json:"status"`
		Timeout int64 `json:"timeout"`
	} `json:"errors"`
	LatencyUS struct {
		P50 int64 `json:"p50"`
		P90 int64 `json:"p90"`
		P99 int64 `json:"p99"`
		Max int64 `json:"max"`
	} `json:"latency_us"`
	Statuses         map[string]int64 `json:"statuses"`
	ExhaustedThreads int              `json:"exhausted_threads"`
	// CPU is wrk's own CPU time (the client's share of the machine).
	CPU time.Duration `json:"-"`
	// CaddyCPU is the CPU time the target's Caddy process used during
	// the run (clock ticks: 10ms resolution).
	CaddyCPU time.Duration `json:"caddy_cpu_ns"`
	// PGCPU is the PostgreSQL server's, for a target on latchkey-pg.
	PGCPU time.Duration `json:"postgres_cpu_ns,omitempty"`
}

func (r *wrkResult) reqPerSec() float64 {
	if r.DurationUS <= 0 {
		return 0
	}
	return float64(r.Requests) / (float64(r.DurationUS) / 1e6)
}

// socketErrors is every error that is not a status.
func (r *wrkResult) socketErrors() int64 {
	e := r.Errors
	return e.Connect + e.Read + e.Write + e.Timeout
}

// runWrk runs wrk against base (http://127.0.0.1:PORT) for d with the
// requests of file.
func runWrk(wrkBin, script, base, file, mode string, threads, conns int, d time.Duration) (*wrkResult, error) {
	secs := max(1, int(d.Round(time.Second)/time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), d+60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, wrkBin,
		"-t"+strconv.Itoa(threads), "-c"+strconv.Itoa(conns), "-d"+strconv.Itoa(secs)+"s", "--timeout", "5s",
		"-s", script, base, "--", file, mode, strconv.Itoa(threads))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return nil, fmt.Errorf("wrk %s: %v\n%s%s", base, err, out.String(), errb.String())
	}
	const marker = "LATCHKEY-BENCH "
	for _, line := range strings.Split(out.String(), "\n") {
		if js, ok := strings.CutPrefix(line, marker); ok {
			r := &wrkResult{}
			if err := json.Unmarshal([]byte(js), r); err != nil {
				return nil, fmt.Errorf("wrk %s: parsing %q: %w", base, js, err)
			}
			if ps := cmd.ProcessState; ps != nil {
				r.CPU = ps.UserTime() + ps.SystemTime()
			}
			return r, nil
		}
	}
	return nil, fmt.Errorf("wrk %s: no result line in its output:\n%s%s", base, out.String(), errb.String())
}

func lookPath(bin string) (string, error) {
	if strings.ContainsRune(bin, '/') {
		if fi, err := os.Stat(bin); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return "", fmt.Errorf("%s is not an executable file", bin)
		}
		return bin, nil
	}
	return exec.LookPath(bin)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
