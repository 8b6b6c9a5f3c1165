package archive

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"gorm.io/gorm"

	"github.com/shopdesk/shopdesk/migrations/testdb"
	"github.com/shopdesk/shopdesk/session"
)

// tier is one pairing of a warm store and a blob store under test.
type tier struct {
	name  string
	db    func(t *testing.T) *gorm.DB
	blobs func(t *testing.T) Blobs
}

func tiers() []tier {
	local := func(t *testing.T) Blobs {
		d, err := NewLocalDir(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	s3 := func(t *testing.T) Blobs { return newTestS3(t) }
	sqlite := func(t *testing.T) *gorm.DB { return testdb.SQLite(t) }
	mysql := func(t *testing.T) *gorm.DB { return testdb.MySQL(t) }
	return []tier{
		{"sqlite+localdir", sqlite, local},
		{"mariadb+s3", mysql, s3},
	}
}

var now = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

// history is the messages a test wrote, by conversation.
type history map[int64][]session.Message

// fill writes messages for two shops: shop 1 has two conversations with messages from June to
// November, shop 2 one conversation from July to November. One message every few days.
func fill(t *testing.T, db *gorm.DB) history {
	t.Helper()
	ctx := context.Background()
	store := session.NewStore(db)
	h := history{}
	var all []session.Message
	for _, c := range []struct{ shop, buyer int64 }{{1, 10}, {1, 11}, {2, 20}} {
		conv, _, err := store.FindOrCreateConversation(ctx, c.shop, c.buyer, session.EntryContext{})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
		if c.shop == 2 {
			start = time.Date(2026, 7, 15, 0, 0, 0, 0, time.UTC)
		}
		seq := int64(0)
		for at := start.Add(time.Duration(c.buyer) * time.Hour); at.Before(now); at = at.Add(61 * time.Hour) {
			seq++
			m := session.Message{ConversationID: conv.ID, Seq: seq, ClientMsgID: fmt.Sprintf("cm-%d-%d", conv.ID, seq), ShopID: c.shop,
				SenderKind: session.PartyBuyer, SenderID: c.buyer, Body: session.Body{Type: session.TypeText, Text: fmt.Sprintf("message %d 你好", seq)},
				CreatedAt: at.Add(123456 * time.Microsecond)}
			all = append(all, m)
			h[conv.ID] = append(h[conv.ID], m)
		}
	}
	if _, err := session.NewSQLLog(db).Insert(ctx, all); err != nil {
		t.Fatal(err)
	}
	return h
}

// everything reads every message back from both tiers: the warm rows and every segment the manifest
// records. When settled (no run stopped halfway), it fails on any message found twice and on any
// object the manifest does not record.
func everything(t *testing.T, db *gorm.DB, blobs Blobs, settled bool) (warm, cold history) {
	t.Helper()
	ctx := context.Background()
	warm, cold = history{}, history{}
	var rows []session.Message
	if err := db.Order("conversation_id, seq").Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	for _, m := range rows {
		warm[m.ConversationID] = append(warm[m.ConversationID], m)
	}
	recs, err := NewManifest(db).Segments(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, rec := range recs {
		if rec.State == StateExpired {
			continue
		}
		seg, _, err := fetchSegment(ctx, blobs, rec)
		if err != nil {
			t.Fatal(err)
		}
		keys[rec.ObjectKey] = true
		if got := ranges(seg.Messages); !slices.Equal(got, stripIDs(rec.Ranges)) {
			t.Fatalf("segment %s: ranges %+v, manifest says %+v", rec.ObjectKey, got, rec.Ranges)
		}
		for _, m := range seg.Messages {
			cold[m.ConversationID] = append(cold[m.ConversationID], m)
		}
	}
	for conv, ms := range cold {
		slices.SortFunc(ms, func(a, b session.Message) int { return cmpInt(a.Seq, b.Seq) })
		if !settled {
			continue
		}
		for _, m := range ms {
			if slices.ContainsFunc(warm[conv], func(w session.Message) bool { return w.Seq == m.Seq }) {
				t.Fatalf("message %d/%d is both warm and cold", conv, m.Seq)
			}
		}
		if len(slices.CompactFunc(slices.Clone(ms), func(a, b session.Message) bool { return a.Seq == b.Seq })) != len(ms) {
			t.Fatalf("conversation %d: a message is in two segments", conv)
		}
	}
	if !settled {
		return warm, cold
	}
	// Every object in the cold prefix is one the manifest records: nothing is left behind.
	objs, err := blobs.List(ctx, "cold/")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if !keys[o.Key] {
			t.Errorf("object %s is not in the manifest", o.Key)
		}
	}
	return warm, cold
}

func stripIDs(rs []SegmentRange) []SegmentRange {
	out := slices.Clone(rs)
	for i := range out {
		out[i].SegmentID = 0
	}
	slices.SortFunc(out, func(a, b SegmentRange) int { return cmpInt(a.ConversationID, b.ConversationID) })
	return out
}

// sameHistory checks that warm and cold together hold exactly the written messages (counting a
// message in both tiers once: a stopped run may leave it so until the rerun).
func sameHistory(t *testing.T, want, warm, cold history) {
	t.Helper()
	for conv, ms := range want {
		got := append(slices.Clone(cold[conv]), warm[conv]...)
		slices.SortFunc(got, func(a, b session.Message) int { return cmpInt(a.Seq, b.Seq) })
		got = slices.CompactFunc(got, func(a, b session.Message) bool { return a.Seq == b.Seq })
		if len(got) != len(ms) {
			t.Fatalf("conversation %d: %d messages across tiers, want %d", conv, len(got), len(ms))
		}
		for i := range ms {
			g, w := got[i], ms[i]
			if g.Seq != w.Seq || g.ClientMsgID != w.ClientMsgID || g.Body.Text != w.Body.Text || !g.CreatedAt.Equal(w.CreatedAt) || g.ShopID != w.ShopID {
				t.Fatalf("conversation %d message %d: %+v, want %+v", conv, i, g, w)
			}
		}
	}
}

func newArchiver(t *testing.T, db *gorm.DB, blobs Blobs, cfg ArchiverConfig) *Archiver {
	t.Helper()
	cfg.Now = func() time.Time { return now }
	if cfg.Days == nil {
		cfg.Days = func(_ context.Context, shop int64) (int, error) {
			if shop == 2 {
				return 30, nil
			}
			return 0, nil // the default, 90
		}
	}
	a, err := NewArchiver(db, blobs, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestArchive(t *testing.T) {
	t.Parallel()
	for _, tr := range tiers() {
		t.Run(tr.name, func(t *testing.T) {
			ctx := context.Background()
			db, blobs := tr.db(t), tr.blobs(t)
			want := fill(t, db)
			a := newArchiver(t, db, blobs, ArchiverConfig{PartMessages: 7})
			res, err := a.Run(ctx)
			if err != nil {
				t.Fatal(err)
			}
			warm, cold := everything(t, db, blobs, true)
			sameHistory(t, want, warm, cold)
			if res.Errors != 0 || res.Moved == 0 || res.Moved != res.Deleted || res.Processed != res.Moved {
				t.Fatalf("result %+v", res)
			}
			// Shop 1 (90 days: cutoff 2026-08-22) keeps August on; shop 2 (30 days: cutoff
			// 2026-10-21) keeps October on.
			for conv, ms := range warm {
				limit := time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC)
				if ms[0].ShopID == 2 {
					limit = time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
				}
				if ms[0].CreatedAt.Before(limit) {
					t.Errorf("conversation %d: message of %s still warm", conv, ms[0].CreatedAt)
				}
			}
			for conv, ms := range cold {
				limit := time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC)
				if ms[0].ShopID == 2 {
					limit = time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
				}
				if !ms[len(ms)-1].CreatedAt.Before(limit) {
					t.Errorf("conversation %d: message of %s archived too early", conv, ms[len(ms)-1].CreatedAt)
				}
			}
			recs, _ := NewManifest(db).Segments(ctx, 0)
			parts := map[string]int{}
			for _, r := range recs {
				if r.State != StateDone || r.Generation != 0 || r.ObjectKey != SegmentKey(r.ShopID, r.Period, r.Part, 0, r.Checksum) || r.MessageCount > 7 || r.MessageCount < 1 {
					t.Errorf("manifest row %+v", r)
				}
				sp := fmt.Sprintf("%d/%s", r.ShopID, r.Period)
				if r.Part != parts[sp] {
					t.Errorf("%s: part %d after %d parts", sp, r.Part, parts[sp])
				}
				parts[sp]++
			}
			var periods []string
			for sp := range parts {
				periods = append(periods, sp)
			}
			slices.Sort(periods)
			if got := strings.Join(periods, " "); got != "1/2026-06 1/2026-07 2/2026-07 2/2026-08 2/2026-09" {
				t.Errorf("archived periods %s", got)
			}
			// A second run finds nothing to do.
			if res, err := a.Run(ctx); err != nil || res != (JobResult{}) {
				t.Fatalf("second run: %+v %v", res, err)
			}
			// --until archives later periods too, and --shop only that shop.
			res, err = a.Archive(ctx, Scope{ShopID: 2, Until: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)})
			if err != nil || res.Moved == 0 {
				t.Fatalf("until November, shop 2: %+v %v", res, err)
			}
			warm, cold = everything(t, db, blobs, true)
			sameHistory(t, want, warm, cold)
			for _, ms := range warm {
				if ms[0].ShopID == 2 && ms[0].CreatedAt.Before(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)) {
					t.Fatalf("shop 2 keeps %s warm after --until November", ms[0].CreatedAt)
				}
				if ms[0].ShopID == 1 && !ms[0].CreatedAt.Before(time.Date(2026, 8, 2, 0, 0, 0, 0, time.UTC)) {
					t.Fatalf("shop 1 changed by a run for shop 2")
				}
			}
			if _, err := a.Archive(ctx, Scope{ShopID: -1}); session.ErrorCode(err) != session.EINVALID {
				t.Fatalf("negative shop: %v", err)
			}
		})
	}
}

// TestArchiveResumes stops a run at each named step, as a crash would, and reruns it: every message
// ends up present exactly once across the warm and cold tiers, and no object is left behind.
func TestArchiveResumes(t *testing.T) {
	t.Parallel()
	points := []string{"archive.after_put", "archive.after_verify", "archive.after_manifest", "archive.before_delete", "archive.after_delete"}
	for _, tr := range tiers() {
		for _, point := range points {
			for _, hit := range []int{1, 3} {
				t.Run(fmt.Sprintf("%s/%s/%d", tr.name, point, hit), func(t *testing.T) {
					t.Parallel()
					ctx := context.Background()
					db, blobs := tr.db(t), tr.blobs(t)
					want := fill(t, db)
					crashed := errors.New("crash at " + point)
					n := 0
					a := newArchiver(t, db, blobs, ArchiverConfig{PartMessages: 7, CrashPoint: func(name string) error {
						if name == point {
							if n++; n == hit {
								return crashed
							}
						}
						return nil
					}})
					if _, err := a.Run(ctx); !errors.Is(err, crashed) {
						t.Fatalf("first run: %v", err)
					}
					warm, cold := everything(t, db, blobs, false)
					sameHistory(t, want, warm, cold)
					if _, err := a.Run(ctx); err != nil {
						t.Fatalf("rerun: %v", err)
					}
					warm, cold = everything(t, db, blobs, true)
					sameHistory(t, want, warm, cold)
					recs, _ := NewManifest(db).Segments(ctx, 0)
					for _, r := range recs {
						if r.State != StateDone {
							t.Errorf("segment %s left %s", r.ObjectKey, r.State)
						}
					}
					if res, err := a.Run(ctx); err != nil || res != (JobResult{}) {
						t.Fatalf("third run: %+v %v", res, err)
					}
				})
			}
		}
	}
}

// lostLease is a lease that has run out.
type lostLease struct{}

func (lostLease) Held(context.Context) bool { return false }

// TestArchiveChecksLease: a run whose lease ran out deletes nothing and stops; the next run with its
// lease finishes the work.
func TestArchiveChecksLease(t *testing.T) {
	tr := tiers()[0]
	ctx := context.Background()
	db, blobs := tr.db(t), tr.blobs(t)
	want := fill(t, db)
	a := newArchiver(t, db, blobs, ArchiverConfig{})
	res, err := a.Run(WithLease(ctx, lostLease{}))
	if !errors.Is(err, ErrLeaseLost) || res.Deleted != 0 {
		t.Fatalf("run without lease: %+v %v", res, err)
	}
	var n int64
	db.Model(&session.Message{}).Count(&n)
	total := 0
	for _, ms := range want {
		total += len(ms)
	}
	if n != int64(total) {
		t.Fatalf("%d warm messages of %d after a run without lease", n, total)
	}
	if _, err := a.Run(ctx); err != nil {
		t.Fatal(err)
	}
	warm, cold := everything(t, db, blobs, true)
	sameHistory(t, want, warm, cold)
	if len(cold) == 0 {
		t.Fatal("nothing archived")
	}
}

func TestNewArchiverRejectsBadConfig(t *testing.T) {
	db := testdb.SQLite(t)
	blobs, _ := NewLocalDir(t.TempDir())
	for name, c := range map[string]struct {
		db    *gorm.DB
		blobs Blobs
		cfg   ArchiverConfig
	}{
		"no db":         {nil, blobs, ArchiverConfig{}},
		"no blobs":      {db, nil, ArchiverConfig{}},
		"bad period":    {db, blobs, ArchiverConfig{Period: "year"}},
		"negative part": {db, blobs, ArchiverConfig{PartMessages: -1}},
	} {
		if _, err := NewArchiver(c.db, c.blobs, c.cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	a := newArchiver(t, db, blobs, ArchiverConfig{Days: func(context.Context, int64) (int, error) { return -1, nil }})
	fill(t, db)
	if res, err := a.Run(context.Background()); err == nil || res.Errors != 2 {
		t.Fatalf("negative days: %+v %v", res, err)
	}
}

// TestArchiveOverlappingRuns runs two archivers at once on the same stores, as two nodes would when
// a lease expires mid-run: whatever interleaving, no message is lost or held twice, and a later run
// settles everything.
func TestArchiveOverlappingRuns(t *testing.T) {
	t.Parallel()
	for _, tr := range tiers() {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db, blobs := tr.db(t), tr.blobs(t)
			want := fill(t, db)
			a := newArchiver(t, db, blobs, ArchiverConfig{PartMessages: 3})
			b := newArchiver(t, db, blobs, ArchiverConfig{PartMessages: 3})
			errs := make(chan error, 2)
			for _, r := range []*Archiver{a, b} {
				go func() {
					_, err := r.Run(ctx)
					errs <- err
				}()
			}
			for range 2 {
				err := <-errs
				if err != nil && !errors.Is(err, ErrManifestConflict) && !isDeadlock(err) {
					t.Errorf("overlapping run: %v", err)
				}
				t.Logf("overlapping run: %v", err)
			}
			warm, cold := everything(t, db, blobs, false)
			sameHistory(t, want, warm, cold)
			for _, ms := range cold {
				if len(slices.CompactFunc(slices.Clone(ms), func(x, y session.Message) bool { return x.Seq == y.Seq })) != len(ms) {
					t.Fatal("a message is in two segments")
				}
			}
			for range 2 { // the first settles what the race left; the second sweeps what the first replaced
				if _, err := a.Run(ctx); err != nil {
					t.Fatal(err)
				}
			}
			warm, cold = everything(t, db, blobs, true)
			sameHistory(t, want, warm, cold)
		})
	}
}

// isDeadlock: MariaDB may pick one of two concurrent Record transactions as a deadlock victim, which
// refuses that run as a conflict would.
func isDeadlock(err error) bool {
	return strings.Contains(err.Error(), "Deadlock") || strings.Contains(err.Error(), "deadlock")
}

// TestArchiveBlobStoreDown: with the object store unreachable the run fails and deletes nothing;
// once it is back, the next run archives everything.
func TestArchiveBlobStoreDown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.MySQL(t)
	down := &switchable{Handler: gofakes3.New(s3mem.New()).Server()}
	srv := httptest.NewServer(down)
	defer srv.Close()
	cfg := S3Config{Endpoint: srv.URL, Bucket: "down", AccessKey: "k", SecretKey: "s", Region: "us-east-1"}
	blobs, err := NewS3(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := fill(t, db)
	var total int64
	for _, ms := range want {
		total += int64(len(ms))
	}
	down.off.Store(true)
	a := newArchiver(t, db, blobs, ArchiverConfig{PartMessages: 7})
	res, err := a.Run(ctx)
	if err == nil || res.Deleted != 0 || res.Errors != 2 {
		t.Fatalf("run with the store down: %+v %v", res, err)
	}
	var n int64
	db.Model(&session.Message{}).Count(&n)
	if n != total {
		t.Fatalf("%d of %d warm messages left after a failed run", n, total)
	}
	if st, _ := NewManifest(db).Stats(ctx); st.Segments != 0 {
		t.Fatalf("manifest after a failed run: %+v", st)
	}
	down.off.Store(false)
	if _, err := a.Run(ctx); err != nil {
		t.Fatal(err)
	}
	warm, cold := everything(t, db, blobs, true)
	sameHistory(t, want, warm, cold)
	if len(cold) == 0 {
		t.Fatal("nothing archived after the store came back")
	}
}

// switchable answers 503 while off.
type switchable struct {
	http.Handler
	off atomic.Bool
}

func (s *switchable) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.off.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	s.Handler.ServeHTTP(w, r)
}

// TestArchiveFinishesShopWithNoWarmRowsLeft: a run that stops after deleting a shop's last old warm
// rows, before marking the segment done, leaves a shop with nothing old left in the warm store; the
// next run still finds the pending segment and finishes it.
func TestArchiveFinishesShopWithNoWarmRowsLeft(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.SQLite(t)
	blobs, err := NewLocalDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	conv, _, err := session.NewStore(db).FindOrCreateConversation(ctx, 1, 10, session.EntryContext{})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []session.Message
	for seq := int64(1); seq <= 5; seq++ {
		msgs = append(msgs, session.Message{ConversationID: conv.ID, Seq: seq, ClientMsgID: fmt.Sprintf("c%d", seq), ShopID: 1,
			SenderKind: session.PartyBuyer, SenderID: 10, Body: session.Body{Type: session.TypeText, Text: "old"},
			CreatedAt: time.Date(2026, 6, 1, 0, 0, int(seq), 0, time.UTC)})
	}
	if _, err := session.NewSQLLog(db).Insert(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	crashed := errors.New("crash")
	a := newArchiver(t, db, blobs, ArchiverConfig{CrashPoint: func(name string) error {
		if name == "archive.after_delete" {
			return crashed
		}
		return nil
	}})
	if _, err := a.Run(ctx); !errors.Is(err, crashed) {
		t.Fatalf("first run: %v", err)
	}
	if pending, err := NewManifest(db).Pending(ctx, 1); err != nil || len(pending) != 1 {
		t.Fatalf("pending after the crash: %+v %v", pending, err)
	}
	if _, err := newArchiver(t, db, blobs, ArchiverConfig{}).Run(ctx); err != nil {
		t.Fatal(err)
	}
	if pending, err := NewManifest(db).Pending(ctx, 1); err != nil || len(pending) != 0 {
		t.Fatalf("pending after the rerun: %+v %v", pending, err)
	}
	warm, cold := everything(t, db, blobs, true)
	sameHistory(t, history{conv.ID: msgs}, warm, cold)
}
