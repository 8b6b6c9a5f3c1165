package app

import (
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// serveDebug serves Go's profiling handlers on --debug-addr, when it is set. They get a listener of
// their own, never the public one: a profile reveals internals and costs CPU, so it belongs on
// loopback or an operator's network only.
func (a *App) serveDebug() error {
	if a.cfg.DebugAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", a.cfg.DebugAddr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	a.debug = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	a.log.Info("profiling handlers", "addr", ln.Addr().String())
	go func() {
		if err := a.debug.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("debug server", "err", err)
		}
	}()
	return nil
}

// closeDebug stops the profiling server, if any.
func (a *App) closeDebug() {
	if a.debug != nil {
		_ = a.debug.Close()
	}
}
