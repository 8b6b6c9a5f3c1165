package app

import (
	"bytes"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	adminui "github.com/shopdesk/shopdesk/admin-ui"
)

// notBuiltPage answers the UI's paths when the binary was built before the front end (only the
// committed placeholder is embedded).
const notBuiltPage = `<!doctype html><meta charset="utf-8"><title>Shopdesk</title>
<p>Shopdesk is running, but this binary was built without its web front end.
Run <code>make run</code> (or <code>make ui build</code>) to build the workspace, the demo store and the widget.
The API is at <a href="/api/gateway">/api</a>.</p>`

// mountUI serves the embedded front end: the demo store at / and /store/, the agent workspace and
// manager screens at /app/ (a single-page app: unknown paths below it get its index.html), the
// hashed build assets at /assets/ and the buyer widget at /widget.js. None of these prefixes
// overlaps /api, /ws, /healthz, /readyz or /metrics.
func (a *App) mountUI(r *gin.Engine) {
	ui := uiFiles{fs: adminui.Assets(), built: adminui.Built()}
	r.GET("/", func(c *gin.Context) { ui.serve(c, "store/index.html") })
	r.GET("/widget.js", func(c *gin.Context) { ui.serve(c, "widget.js") })
	r.GET("/app", func(c *gin.Context) { c.Redirect(http.StatusFound, "/app/") })
	r.GET("/app/*path", func(c *gin.Context) {
		p := "app" + c.Param("path")
		if strings.HasSuffix(p, "/") || !ui.exists(p) {
			p = "app/index.html"
		}
		c.Header("X-Frame-Options", "DENY")
		ui.serve(c, p)
	})
	r.GET("/store/*path", func(c *gin.Context) {
		p := "store" + c.Param("path")
		if strings.HasSuffix(p, "/") {
			p += "index.html"
		}
		ui.serve(c, p)
	})
	r.GET("/assets/*path", func(c *gin.Context) { ui.serve(c, "assets"+c.Param("path")) })
}

// uiFiles serves files of the embedded build.
type uiFiles struct {
	fs    fs.FS
	built bool
}

func (u uiFiles) exists(name string) bool {
	st, err := fs.Stat(u.fs, name)
	return err == nil && !st.IsDir()
}

// serve writes one embedded file. Hashed assets are cached for a year; pages and widget.js are
// revalidated on every load, so a new deployment reaches browsers at once.
func (u uiFiles) serve(c *gin.Context, name string) {
	name = path.Clean(name)
	if !u.built && (strings.HasSuffix(name, ".html") || name == "widget.js") {
		c.Header("Cache-Control", "no-cache")
		if name == "widget.js" {
			c.Data(http.StatusOK, "text/javascript; charset=utf-8", []byte("console.warn('shopdesk: the widget is not built (make ui)');\n"))
			return
		}
		c.Data(http.StatusOK, "text/html; charset=utf-8", []byte(notBuiltPage))
		return
	}
	data, err := fs.ReadFile(u.fs, name)
	if err != nil {
		fail(c, errorf(codeNotFound, "no such file"))
		return
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	h := c.Writer.Header()
	h.Set("Content-Type", ct)
	h.Set("X-Content-Type-Options", "nosniff")
	if strings.HasPrefix(name, "assets/") {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	http.ServeContent(c.Writer, c.Request, name, time.Time{}, bytes.NewReader(data))
}
