package archive

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shopdesk/shopdesk/session"
)

// TestManifest checks the manifest's own rules on SQLite and MariaDB: a part is recorded once, a
// rerun gets the stored row back, a rewrite switches a row only from the generation it read.
func TestManifest(t *testing.T) {
	t.Parallel()
	for _, tr := range tiers() {
		t.Run(tr.name, func(t *testing.T) {
			ctx := context.Background()
			m := NewManifest(tr.db(t))
			at := time.Date(2026, 1, 2, 3, 4, 5, 600000000, time.UTC)
			rec := SegmentRecord{ShopID: 5, Period: "2026-01", Part: 0, ObjectKey: SegmentKey(5, "2026-01", 0, 0, "sha256:aa"), MessageCount: 3,
				SizeBytes: 99, Checksum: "sha256:aa", FirstTime: at, LastTime: at.Add(time.Hour), State: StateWritten, CreatedAt: at,
				Ranges: []SegmentRange{{ConversationID: 1, FirstSeq: 1, LastSeq: 2, MessageCount: 2}, {ConversationID: 2, FirstSeq: 7, LastSeq: 7, MessageCount: 1}}}
			if n, err := m.NextPart(ctx, 5, "2026-01"); err != nil || n != 0 {
				t.Fatalf("next part of an empty period: %d %v", n, err)
			}
			got, err := m.Record(ctx, rec, nil)
			if err != nil || got.ID == 0 {
				t.Fatalf("record: %+v %v", got, err)
			}
			again, err := m.Record(ctx, rec, nil)
			if err != nil || again.ID != got.ID {
				t.Fatalf("record again: %+v %v", again, err)
			}
			other := rec
			other.Checksum = "sha256:bb"
			if _, err := m.Record(ctx, other, nil); !errors.Is(err, ErrManifestConflict) {
				t.Fatalf("another object for the same part: %v", err)
			}
			if n, _ := m.NextPart(ctx, 5, "2026-01"); n != 1 {
				t.Fatalf("next part: %d", n)
			}
			// While part 0's warm rows are not deleted, no other part of the shop is recorded.
			part1 := rec
			part1.Part, part1.Checksum = 1, "sha256:dd"
			part1.ObjectKey = SegmentKey(5, "2026-01", 1, 0, part1.Checksum)
			if _, err := m.Record(ctx, part1, nil); !errors.Is(err, ErrManifestConflict) {
				t.Fatalf("a second part while the first is pending: %v", err)
			}
			// Nor one whose warm messages are gone.
			part1.ShopID, part1.ObjectKey = 6, SegmentKey(6, "2026-01", 1, 0, part1.Checksum)
			if _, err := m.Record(ctx, part1, []session.MessageKey{{ConversationID: 77, Seq: 1}}); !errors.Is(err, ErrManifestConflict) {
				t.Fatalf("a segment of messages no longer warm: %v", err)
			}
			if p, err := m.Pending(ctx, 5); err != nil || len(p) != 1 || p[0].ID != got.ID {
				t.Fatalf("pending: %+v %v", p, err)
			}
			st, err := m.Stats(ctx)
			if err != nil || st != (ColdStats{Segments: 1, Messages: 3, Bytes: 99, Pending: 1}) {
				t.Fatalf("stats: %+v %v", st, err)
			}
			if err := m.MarkDone(ctx, got.ID); err != nil {
				t.Fatal(err)
			}
			if p, _ := m.Pending(ctx, 5); len(p) != 0 {
				t.Fatalf("pending after done: %+v", p)
			}
			segs, err := m.ForConversation(ctx, 2, 0, 100)
			if err != nil || len(segs) != 1 || len(segs[0].Ranges) != 1 || segs[0].Ranges[0].FirstSeq != 7 ||
				!segs[0].FirstTime.Equal(at) || segs[0].State != StateDone {
				t.Fatalf("segments of conversation 2: %+v %v", segs, err)
			}
			if s, r := segs[0], segs[0].Ranges[0]; s.ID != got.ID || s.ObjectKey != got.ObjectKey || s.Checksum != got.Checksum ||
				s.MessageCount != got.MessageCount || s.ShopID != 5 || r.SegmentID != got.ID || r.ConversationID != 2 || r.MessageCount == 0 {
				t.Fatalf("segment of conversation 2: %+v, recorded %+v", segs[0], got)
			}
			if segs, _ := m.ForConversation(ctx, 1, 3, 100); len(segs) != 0 {
				t.Fatalf("conversation 1 above seq 3: %+v", segs)
			}
			next := rec
			next.Generation, next.ObjectKey, next.MessageCount, next.Checksum = 1, SegmentKey(5, "2026-01", 0, 1, "sha256:cc"), 1, "sha256:cc"
			next.Ranges = []SegmentRange{{ConversationID: 2, FirstSeq: 7, LastSeq: 7, MessageCount: 1}}
			if ok, err := m.Replace(ctx, got, next); err != nil || !ok {
				t.Fatalf("replace: %v %v", ok, err)
			}
			if ok, err := m.Replace(ctx, got, next); err != nil || ok {
				t.Fatalf("replace from a stale generation: %v %v", ok, err)
			}
			all, _ := m.Segments(ctx, 5)
			if len(all) != 1 || all[0].Generation != 1 || all[0].MessageCount != 1 || all[0].RewrittenAt == nil || len(all[0].Ranges) != 1 {
				t.Fatalf("after replace: %+v", all)
			}
			if segs, _ := m.ForConversation(ctx, 1, 0, 100); len(segs) != 0 {
				t.Fatalf("conversation 1 still listed after its rewrite: %+v", segs)
			}
		})
	}
}
