package caddymodule_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestAdminAPIWrongMethod: every admin route answers a method it does not
// take with 405, the methods it does take in Allow, and one error message.
func TestAdminAPIWrongMethod(t *testing.T) {
	o := gwOpts{handler: "invite"}
	g := startGateway(t, o)
	for _, c := range []struct{ method, path, allow string }{
		{http.MethodDelete, "/latchkey/users", "GET, POST"},
		{http.MethodGet, "/latchkey/users/1/activate", "POST"},
		{http.MethodPut, "/latchkey/sessions", "GET"},
		{http.MethodGet, "/latchkey/sessions/abc/revoke", "POST"},
		{http.MethodPatch, "/latchkey/invites", "GET, POST"},
		{http.MethodDelete, "/latchkey/links/abc", "GET"},
		{http.MethodPost, "/latchkey/audit", "GET"},
		{http.MethodGet, "/latchkey/users/1/roles/staff", "DELETE"},
		{http.MethodPost, "/latchkey/mail", "GET"},
		{http.MethodGet, "/latchkey/cli", "POST"},
	} {
		req, _ := http.NewRequest(c.method, "http://"+g.admin+c.path, nil)
		req.Header.Set("Origin", "http://"+g.admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Error string }
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != c.allow {
			t.Errorf("%s %s: %d, Allow %q; want 405, %q", c.method, c.path, resp.StatusCode, resp.Header.Get("Allow"), c.allow)
		}
		if err != nil || strings.Count(body.Error, "not allowed") != 1 || !strings.Contains(body.Error, c.method) {
			t.Errorf("%s %s: error %q (%v), want one message naming the method", c.method, c.path, body.Error, err)
		}
	}
	// An unknown path stays 404.
	resp, err := http.Get("http://" + g.admin + "/latchkey/nothing")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown route: %d, want 404", resp.StatusCode)
	}
}
