package archive

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/shopdesk/shopdesk/session"
)

// SegmentFormat names the cold segment format, written in every segment's header line.
//
// A segment is JSON Lines compressed with zstd: first a SegmentHeader, then one session.Message per
// line in its JSON form, ordered by (conversation, seq). It holds one shop's messages created in one
// period (a UTC month or day), split into numbered parts. Its object key is a function of (shop,
// period, part, generation), so a rerun after a crash writes the same key; erasing a buyer writes the
// segment again without their messages under the next generation, switches the manifest row to it,
// and only then deletes the old object.
const SegmentFormat = "shopdesk.cold.v1"

// maxSegmentBytes bounds a decoded segment, so a corrupt or hostile object cannot exhaust memory.
const maxSegmentBytes = 1 << 30

// SegmentHeader is the first line of a segment: what it holds, so that an object is understood
// without the manifest.
type SegmentHeader struct {
	Format     string `json:"format"`
	ShopID     int64  `json:"shop_id"`
	Period     string `json:"period"`
	Part       int    `json:"part"`
	Generation int    `json:"generation"`
	Count      int    `json:"count"`
}

// Segment is a decoded segment.
type Segment struct {
	Header   SegmentHeader
	Messages []session.Message
}

// Period is the span of time one segment packs.
type Period string

// Periods a segment can span, in UTC.
const (
	PeriodMonth Period = "month"
	PeriodDay   Period = "day"
)

// Bounds returns the name and the [from, to) bounds of the period that holds t.
func (p Period) Bounds(t time.Time) (name string, from, to time.Time, err error) {
	t = t.UTC()
	switch p {
	case PeriodMonth, "":
		from = time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
		return from.Format("2006-01"), from, from.AddDate(0, 1, 0), nil
	case PeriodDay:
		from = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
		return from.Format("2006-01-02"), from, from.AddDate(0, 0, 1), nil
	}
	return "", time.Time{}, time.Time{}, fmt.Errorf("period %q: want %q or %q", p, PeriodMonth, PeriodDay)
}

// SegmentKey is the object key of a segment: cold/<shop>/<period>/<part>-g<generation>-<hash>.jsonl.zst,
// where hash is the first 16 hex digits of its checksum. The same messages always get the same key,
// and different contents never share one, so no object that a manifest row records is ever
// overwritten, whatever two runs do at once.
func SegmentKey(shopID int64, period string, part, generation int, checksum string) string {
	h := strings.TrimPrefix(checksum, "sha256:")
	if len(h) > 16 {
		h = h[:16]
	}
	return fmt.Sprintf("cold/%d/%s/%06d-g%d-%s.jsonl.zst", shopID, period, part, generation, h)
}

// parseSegmentKey returns the period, part and generation a segment key names; ok is false for keys
// of another shape.
func parseSegmentKey(shopID int64, key string) (period string, part, generation int, ok bool) {
	rest, found := strings.CutPrefix(key, fmt.Sprintf("cold/%d/", shopID))
	if !found {
		return "", 0, 0, false
	}
	period, name, found := strings.Cut(rest, "/")
	if !found {
		return "", 0, 0, false
	}
	var hash string
	if n, err := fmt.Sscanf(strings.TrimSuffix(name, ".jsonl.zst"), "%d-g%d-%s", &part, &generation, &hash); err != nil || n != 3 {
		return "", 0, 0, false
	}
	return period, part, generation, true
}

// Checksum is the checksum the manifest keeps of a segment object: "sha256:" and the hex digest of
// its compressed bytes.
func Checksum(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

var (
	zstdEncoder, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	zstdDecoder, _ = zstd.NewReader(nil, zstd.WithDecoderMaxMemory(maxSegmentBytes), zstd.WithDecoderConcurrency(0))
)

// EncodeSegment packs msgs, which must belong to h.ShopID and be in strictly increasing (conversation,
// seq) order, into segment bytes; the same input gives the same bytes. h.Format and h.Count are set
// here.
func EncodeSegment(h SegmentHeader, msgs []session.Message) ([]byte, error) {
	if err := checkOrder(h.ShopID, msgs); err != nil {
		return nil, err
	}
	h.Format, h.Count = SegmentFormat, len(msgs)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(h); err != nil {
		return nil, err
	}
	for i := range msgs {
		m := msgs[i]
		m.Recalled = false // a read-time mark, not stored
		m.CreatedAt = m.CreatedAt.UTC()
		if err := enc.Encode(m); err != nil {
			return nil, fmt.Errorf("encode message %d/%d: %w", m.ConversationID, m.Seq, err)
		}
	}
	return zstdEncoder.EncodeAll(buf.Bytes(), nil), nil
}

// DecodeSegment unpacks segment bytes and checks their header, count and order.
func DecodeSegment(data []byte) (Segment, error) {
	raw, err := zstdDecoder.DecodeAll(data, nil)
	if err != nil {
		return Segment{}, fmt.Errorf("segment: decompress: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 0, 64<<10), maxSegmentBytes)
	var s Segment
	if !sc.Scan() {
		return Segment{}, errors.New("segment: empty")
	}
	if err := json.Unmarshal(sc.Bytes(), &s.Header); err != nil {
		return Segment{}, fmt.Errorf("segment: header: %w", err)
	}
	if s.Header.Format != SegmentFormat {
		return Segment{}, fmt.Errorf("segment: format %q, want %q", s.Header.Format, SegmentFormat)
	}
	s.Messages = make([]session.Message, 0, s.Header.Count)
	for sc.Scan() {
		var m session.Message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return Segment{}, fmt.Errorf("segment: line %d: %w", len(s.Messages)+2, err)
		}
		s.Messages = append(s.Messages, m)
	}
	if err := sc.Err(); err != nil {
		return Segment{}, fmt.Errorf("segment: %w", err)
	}
	if len(s.Messages) != s.Header.Count {
		return Segment{}, fmt.Errorf("segment: %d messages, header says %d", len(s.Messages), s.Header.Count)
	}
	if err := checkOrder(s.Header.ShopID, s.Messages); err != nil {
		return Segment{}, fmt.Errorf("segment: %w", err)
	}
	return s, nil
}

func checkOrder(shopID int64, msgs []session.Message) error {
	for i, m := range msgs {
		if m.ShopID != shopID {
			return fmt.Errorf("message %d/%d belongs to shop %d, not %d", m.ConversationID, m.Seq, m.ShopID, shopID)
		}
		if i > 0 {
			p := msgs[i-1]
			if m.ConversationID < p.ConversationID || (m.ConversationID == p.ConversationID && m.Seq <= p.Seq) {
				return fmt.Errorf("message %d/%d out of (conversation, seq) order after %d/%d", m.ConversationID, m.Seq, p.ConversationID, p.Seq)
			}
		}
	}
	return nil
}

// ranges summarises which seqs of which conversations msgs (in segment order) hold.
func ranges(msgs []session.Message) []SegmentRange {
	var out []SegmentRange
	for _, m := range msgs {
		if n := len(out); n > 0 && out[n-1].ConversationID == m.ConversationID {
			out[n-1].LastSeq = m.Seq
			out[n-1].MessageCount++
			continue
		}
		out = append(out, SegmentRange{ConversationID: m.ConversationID, FirstSeq: m.Seq, LastSeq: m.Seq, MessageCount: 1})
	}
	return out
}
