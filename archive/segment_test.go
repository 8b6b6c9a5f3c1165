package archive

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/shopdesk/shopdesk/session"
)

func segMsg(conv, seq int64) session.Message {
	return session.Message{ConversationID: conv, Seq: seq, ClientMsgID: "c", ShopID: 1, SenderKind: session.PartyBuyer, SenderID: 9,
		Body: session.Body{Type: session.TypeText, Text: "订单 123 <b>&"}, CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)}
}

func TestSegmentRoundTrip(t *testing.T) {
	msgs := []session.Message{segMsg(1, 1), segMsg(1, 2), segMsg(2, 1)}
	msgs[2].Body = session.Body{Type: session.TypeProduct, Card: &session.Card{ID: "sku-1", Title: "T", Price: "9.90"}}
	h := SegmentHeader{ShopID: 1, Period: "2026-01", Part: 3, Generation: 1}
	a, err := EncodeSegment(h, msgs)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := EncodeSegment(h, msgs)
	if !bytes.Equal(a, b) || Checksum(a) != Checksum(b) {
		t.Fatal("the same messages encoded to different bytes")
	}
	seg, err := DecodeSegment(a)
	if err != nil {
		t.Fatal(err)
	}
	if seg.Header != (SegmentHeader{Format: SegmentFormat, ShopID: 1, Period: "2026-01", Part: 3, Generation: 1, Count: 3}) {
		t.Fatalf("header %+v", seg.Header)
	}
	for i, m := range seg.Messages {
		if m.ConversationID != msgs[i].ConversationID || m.Seq != msgs[i].Seq || !m.CreatedAt.Equal(msgs[i].CreatedAt) ||
			m.Body.Text != msgs[i].Body.Text || (m.Body.Card == nil) != (msgs[i].Body.Card == nil) {
			t.Fatalf("message %d: %+v, want %+v", i, m, msgs[i])
		}
	}
	if got := ranges(msgs); len(got) != 2 || got[0] != (SegmentRange{ConversationID: 1, FirstSeq: 1, LastSeq: 2, MessageCount: 2}) ||
		got[1] != (SegmentRange{ConversationID: 2, FirstSeq: 1, LastSeq: 1, MessageCount: 1}) {
		t.Fatalf("ranges %+v", got)
	}
	if !strings.HasPrefix(Checksum(a), "sha256:") || len(Checksum(a)) != 7+64 {
		t.Fatalf("checksum %q", Checksum(a))
	}
}

func TestSegmentRejects(t *testing.T) {
	h := SegmentHeader{ShopID: 1, Period: "2026-01"}
	for name, msgs := range map[string][]session.Message{
		"out of order":   {segMsg(1, 2), segMsg(1, 1)},
		"duplicate":      {segMsg(1, 1), segMsg(1, 1)},
		"conv order":     {segMsg(2, 1), segMsg(1, 5)},
		"another shop's": {segMsg(1, 1), func() session.Message { m := segMsg(1, 2); m.ShopID = 2; return m }()},
	} {
		if _, err := EncodeSegment(h, msgs); err == nil {
			t.Errorf("%s: encoded", name)
		}
	}
	good, _ := EncodeSegment(h, []session.Message{segMsg(1, 1)})
	wrongCount := zstdEncoder.EncodeAll([]byte(`{"format":"shopdesk.cold.v1","shop_id":1,"count":2}`+"\n"+`{"conversation_id":1,"seq":1,"shop_id":1}`+"\n"), nil)
	wrongFormat := zstdEncoder.EncodeAll([]byte(`{"format":"other","shop_id":1,"count":0}`+"\n"), nil)
	for name, data := range map[string][]byte{
		"not zstd":     []byte("hello"),
		"truncated":    good[:len(good)-4],
		"empty":        zstdEncoder.EncodeAll(nil, nil),
		"wrong count":  wrongCount,
		"wrong format": wrongFormat,
		"bad line":     zstdEncoder.EncodeAll([]byte(`{"format":"shopdesk.cold.v1","shop_id":1,"count":1}`+"\n{nope\n"), nil),
	} {
		if _, err := DecodeSegment(data); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func TestPeriodBounds(t *testing.T) {
	at := time.Date(2026, 12, 31, 23, 59, 59, 999, time.FixedZone("x", -3600)) // 2027-01-01 00:59 UTC
	for _, c := range []struct {
		p          Period
		name       string
		from, to   time.Time
		shouldFail bool
	}{
		{PeriodMonth, "2027-01", time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC), false},
		{PeriodDay, "2027-01-01", time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 2, 0, 0, 0, 0, time.UTC), false},
		{"week", "", time.Time{}, time.Time{}, true},
	} {
		name, from, to, err := c.p.Bounds(at)
		if (err != nil) != c.shouldFail || name != c.name || !from.Equal(c.from) || !to.Equal(c.to) {
			t.Errorf("%s: %s %v %v %v", c.p, name, from, to, err)
		}
	}
	sum := Checksum([]byte("x"))
	k := SegmentKey(42, "2026-01", 3, 1, sum)
	if k != "cold/42/2026-01/000003-g1-"+sum[7:23]+".jsonl.zst" || CheckKey(k) != nil {
		t.Fatalf("segment key %q", k)
	}
	if period, part, gen, ok := parseSegmentKey(42, k); !ok || period != "2026-01" || part != 3 || gen != 1 {
		t.Fatalf("parse %q: %s %d %d %v", k, period, part, gen, ok)
	}
	for _, bad := range []string{"cold/43/2026-01/000003-g1-ab.jsonl.zst", "cold/42/000003-g1-ab.jsonl.zst", "cold/42/2026-01/x.jsonl.zst", "cold/42/2026-01/000003-g1.jsonl.zst"} {
		if _, _, _, ok := parseSegmentKey(42, bad); ok {
			t.Errorf("parsed %q", bad)
		}
	}
}
