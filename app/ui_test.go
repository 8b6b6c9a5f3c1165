package app

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	adminui "github.com/shopdesk/shopdesk/admin-ui"
)

// uiHandler returns the node's handler with the UI mounted: through Handler once app/http.go calls
// mountUI, or by mounting it on Handler's engine here until then (which also proves that the UI's
// routes do not collide with the API's).
func uiHandler(t *testing.T) http.Handler {
	t.Helper()
	cfg, err := ParseConfig("test", []string{"--addr=127.0.0.1:0", "--data=" + t.TempDir(), "--operator-token=t", "--bcrypt-cost=4"},
		func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.closeBackends)
	h := a.Handler()
	eng, ok := h.(*gin.Engine)
	if !ok {
		t.Fatalf("Handler is a %T, not a gin engine", h)
	}
	mounted := false
	for _, r := range eng.Routes() {
		if r.Path == "/widget.js" {
			mounted = true
		}
	}
	if !mounted {
		a.mountUI(eng)
	}
	return eng
}

func get(t *testing.T, h http.Handler, path string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	res := rec.Result()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func TestUIServesStoreWorkspaceAndWidget(t *testing.T) {
	h := uiHandler(t)
	built := adminui.Built()
	for _, tc := range []struct {
		path, ctype, want, wantBuilt string
	}{
		{"/", "text/html", "Shopdesk", "Demo Tea House"},
		{"/store/product.html", "text/html", "Shopdesk", "Demo Tea House"},
		{"/app/", "text/html", "Shopdesk", `<div id="app">`},
		{"/app/some/deep/link", "text/html", "Shopdesk", `<div id="app">`},
		{"/widget.js", "text/javascript", "widget", "Shopdesk"},
	} {
		res, body := get(t, h, tc.path)
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %d", tc.path, res.StatusCode)
			continue
		}
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, tc.ctype) {
			t.Errorf("GET %s: content type %q, want %s", tc.path, ct, tc.ctype)
		}
		want := tc.want
		if built {
			want = tc.wantBuilt
		}
		if !strings.Contains(body, want) {
			t.Errorf("GET %s (built=%v): body lacks %q", tc.path, built, want)
		}
		if res.Header.Get("Cache-Control") != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q, want no-cache", tc.path, res.Header.Get("Cache-Control"))
		}
	}
	if res, _ := get(t, h, "/app"); res.StatusCode != http.StatusFound || res.Header.Get("Location") != "/app/" {
		t.Errorf("GET /app: %d to %q, want a redirect to /app/", res.StatusCode, res.Header.Get("Location"))
	}
}

func TestUIAssetsAndUnknownFiles(t *testing.T) {
	h := uiHandler(t)
	if res, body := get(t, h, "/assets/nope.js"); res.StatusCode != http.StatusNotFound || !strings.Contains(body, "ENOTFOUND") {
		t.Errorf("unknown asset: %d %s", res.StatusCode, body)
	}
	if res, _ := get(t, h, "/store/../../embed.go"); res.StatusCode == http.StatusOK {
		t.Error("a path outside the build was served")
	}
	if !adminui.Built() {
		// make test builds the front end first: in CI an unbuilt one is a failure, not a skip.
		if os.Getenv("CI") == "true" {
			t.Fatal("front end not built: make test runs make ui before the Go tests")
		}
		t.Skip("front end not built: hashed assets are checked after make ui")
	}
	_, page := get(t, h, "/app/")
	i := strings.Index(page, "/assets/")
	if i < 0 {
		t.Fatal("workspace page names no asset")
	}
	asset := page[i : i+strings.IndexAny(page[i:], `"'`)]
	res, _ := get(t, h, asset)
	if res.StatusCode != http.StatusOK || !strings.Contains(res.Header.Get("Cache-Control"), "immutable") {
		t.Errorf("GET %s: %d, Cache-Control %q", asset, res.StatusCode, res.Header.Get("Cache-Control"))
	}
}

func TestUILeavesAPIPathsAlone(t *testing.T) {
	h := uiHandler(t)
	for path, want := range map[string]int{"/healthz": 200, "/api/gateway": 200, "/api/nope": 404, "/nope": 404} {
		res, body := get(t, h, path)
		if res.StatusCode != want {
			t.Errorf("GET %s: %d, want %d (%s)", path, res.StatusCode, want, body)
		}
		if want == 404 && !strings.Contains(body, "ENOTFOUND") {
			t.Errorf("GET %s: %s, want the API's ENOTFOUND", path, body)
		}
	}
}
