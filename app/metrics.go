package app

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the node's Prometheus series, on a registry of their own so that several nodes can
// run in one test process.
type metrics struct {
	reg            *prometheus.Registry
	connections    prometheus.Gauge
	frames         *prometheus.CounterVec
	frameErrors    *prometheus.CounterVec
	sent           prometheus.Counter
	pushes         prometheus.Counter
	busErrors      prometheus.Counter
	flushed        prometheus.Counter
	flushConflicts prometheus.Gauge
	flushLag       prometheus.Gauge
	// flushLagMessages and flushLagSeconds are set by the node that ran the last flush.
	flushLagMessages prometheus.Gauge
	flushLagSeconds  prometheus.Gauge
	flushErrors      prometheus.Counter
	durability       *prometheus.GaugeVec
	presenceSwept    prometheus.Counter
	idleClosed       prometheus.Counter

	routingErrors   prometheus.Counter
	routingAssigned prometheus.Gauge
	routingQueued   prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{
		reg:              prometheus.NewRegistry(),
		connections:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "shopdesk_ws_connections", Help: "Open WebSocket connections on this node."}),
		frames:           prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shopdesk_ws_frames_total", Help: "Client frames received, by type."}, []string{"type"}),
		frameErrors:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shopdesk_ws_frame_errors_total", Help: "Error frames sent, by code."}, []string{"code"}),
		sent:             prometheus.NewCounter(prometheus.CounterOpts{Name: "shopdesk_messages_stored_total", Help: "Messages stored and acknowledged (not counting deduplicated resends)."}),
		pushes:           prometheus.NewCounter(prometheus.CounterOpts{Name: "shopdesk_pushes_total", Help: "Frames queued to local devices by pushes."}),
		busErrors:        prometheus.NewCounter(prometheus.CounterOpts{Name: "shopdesk_bus_errors_total", Help: "Failed publications to the cross-node bus."}),
		flushed:          prometheus.NewCounter(prometheus.CounterOpts{Name: "shopdesk_flush_messages_total", Help: "Messages flushed from the hot tier to the warm store."}),
		flushConflicts:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "shopdesk_flush_conflicts", Help: "Flushed messages whose (conversation, seq) exists in the warm store with another client_msg_id; any makes /readyz fail."}),
		flushLag:         prometheus.NewGauge(prometheus.GaugeOpts{Name: "shopdesk_flush_lag_conversations", Help: "Conversations with messages not yet flushed to the warm store."}),
		flushLagMessages: prometheus.NewGauge(prometheus.GaugeOpts{Name: "shopdesk_flush_lag_messages", Help: "Messages not yet flushed to the warm store (in up to 100 dirty conversations), after the last flush this node ran."}),
		flushLagSeconds:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "shopdesk_flush_lag_seconds", Help: "Age of the oldest message not yet flushed to the warm store, after the last flush this node ran."}),
		flushErrors:      prometheus.NewCounter(prometheus.CounterOpts{Name: "shopdesk_flush_errors_total", Help: "Flush job runs that failed (the warm store unreachable)."}),
		durability:       prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "shopdesk_redis_durability", Help: "1 for the durability mode Redis runs in: always, everysec, os, none."}, []string{"mode"}),
		presenceSwept:    prometheus.NewCounter(prometheus.CounterOpts{Name: "shopdesk_presence_swept_total", Help: "Agents marked offline by the presence sweeper."}),
		idleClosed:       prometheus.NewCounter(prometheus.CounterOpts{Name: "shopdesk_sessions_idle_closed_total", Help: "Sessions closed by the idle sweeper."}),
		routingErrors:    prometheus.NewCounter(prometheus.CounterOpts{Name: "shopdesk_routing_tick_errors_total", Help: "Routing ticks (escalation, no-answer, re-route, queue drain) that failed."}),
		routingAssigned:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "shopdesk_routing_assigned", Help: "Sessions the engine of the ticking node assigned since it started."}),
		routingQueued:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "shopdesk_routing_queued", Help: "Sessions the engine of the ticking node queued since it started."}),
	}
	m.reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector(),
		m.connections, m.frames, m.frameErrors, m.sent, m.pushes, m.busErrors, m.flushed, m.flushConflicts, m.flushLag, m.flushLagMessages, m.flushLagSeconds,
		m.flushErrors, m.durability, m.presenceSwept, m.idleClosed,
		m.routingErrors, m.routingAssigned, m.routingQueued)
	return m
}
