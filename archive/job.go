package archive

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"

	"github.com/shopdesk/shopdesk/session"
)

// Defaults of the archive job.
const (
	DefaultArchiveDays = 90
	// DefaultPartMessages is 10,000 because an uncached history page decodes its whole part: with
	// 50,000 a cold page of 50 took 684-765 ms at p99, with 10,000 297 ms (docs/BENCHMARKS.md).
	DefaultPartMessages = 10_000
)

// ArchiverConfig tunes the archive job; zero values take the defaults.
type ArchiverConfig struct {
	// Days returns after how many days a shop's messages go cold; nil, or 0 from it, means
	// DefaultArchiveDays.
	Days func(ctx context.Context, shopID int64) (int, error)
	// Period is how much time one segment spans; default PeriodMonth. A period is archived once it
	// has wholly passed the shop's cutoff, so messages stay warm up to one period longer than Days.
	Period Period
	// PartMessages bounds the messages of one segment object; default DefaultPartMessages.
	PartMessages int
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Indexed, when set, says whether every warm message of the shop created before the given time
	// is in the search index: a period waits in the warm store until it is, since the index job
	// reads only the warm store, and a message archived before it was indexed would never be found.
	Indexed func(ctx context.Context, shopID int64, before time.Time) (bool, error)
	// CrashPoint, for tests, is called at each named step ("archive.after_put",
	// "archive.after_verify", "archive.after_manifest", "archive.before_delete",
	// "archive.after_delete"); an error stops the run there as a crash would.
	CrashPoint func(name string) error
}

// Archiver is the archive job: it moves warm messages older than their shop's cutoff into cold
// segments. Each run is idempotent and resumes whatever a crashed run left: segments are written
// under deterministic keys, read back and verified, recorded in the manifest, and only then are the
// warm rows deleted, after re-checking the run's lease.
type Archiver struct {
	warm     *session.SQLLog
	manifest *Manifest
	blobs    Blobs
	cfg      ArchiverConfig
}

// NewArchiver returns the archive job over the warm store db (which holds the manifest too) and the
// cold blob store.
func NewArchiver(db *gorm.DB, blobs Blobs, cfg ArchiverConfig) (*Archiver, error) {
	if db == nil || blobs == nil {
		return nil, errors.New("archiver: needs a warm store and a blob store")
	}
	if cfg.Period == "" {
		cfg.Period = PeriodMonth
	}
	if _, _, _, err := cfg.Period.Bounds(time.Time{}); err != nil {
		return nil, fmt.Errorf("archiver: %w", err)
	}
	if cfg.PartMessages < 0 {
		return nil, fmt.Errorf("archiver: part size %d: want a positive number", cfg.PartMessages)
	}
	if cfg.PartMessages == 0 {
		cfg.PartMessages = DefaultPartMessages
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Archiver{warm: session.NewSQLLog(db), manifest: NewManifest(db), blobs: blobs, cfg: cfg}, nil
}

// Scope narrows one job run, for `shopdesk archive <job> --shop --until`.
type Scope struct {
	// ShopID limits the run to one shop; 0 means every shop.
	ShopID int64
	// Until replaces the shops' cutoffs: periods that end by Until are archived. Zero means now minus
	// each shop's days.
	Until time.Time
}

// Run archives every shop by its own cutoff, or the Scope in ctx (WithScope): the Scheduler's job
// function.
func (a *Archiver) Run(ctx context.Context) (JobResult, error) {
	return a.Archive(ctx, ScopeFrom(ctx))
}

// Archive runs the job over scope. A failing shop is counted in Errors and the others go on; the
// error returned joins every shop's.
func (a *Archiver) Archive(ctx context.Context, scope Scope) (JobResult, error) {
	var res JobResult
	if scope.ShopID < 0 {
		return res, session.Errorf(session.EINVALID, "shop %d: want a positive id", scope.ShopID)
	}
	now := a.cfg.Now().UTC()
	shops := []int64{scope.ShopID}
	if scope.ShopID == 0 {
		// No shop archives messages younger than a day, so the candidates are those with older ones.
		before := now.AddDate(0, 0, -1)
		if !scope.Until.IsZero() {
			before = scope.Until
		}
		var err error
		if shops, err = a.warm.ShopsWithMessagesBefore(ctx, before); err != nil {
			return res, err
		}
		// A run that stopped after deleting a shop's last old warm rows left its segment pending, and
		// the shop has nothing old left to be found by: it is finished here too.
		pending, err := a.manifest.PendingShops(ctx)
		if err != nil {
			return res, err
		}
		shops = append(shops, pending...)
		slices.Sort(shops)
		shops = slices.Compact(shops)
	}
	var errs []error
	for _, shop := range shops {
		if err := a.archiveShop(ctx, shop, now, scope.Until, &res); err != nil {
			if errors.Is(err, ErrLeaseLost) || ctx.Err() != nil {
				return res, err
			}
			res.Errors++
			errs = append(errs, fmt.Errorf("shop %d: %w", shop, err))
		}
	}
	return res, errors.Join(errs...)
}

func (a *Archiver) archiveShop(ctx context.Context, shop int64, now, until time.Time, res *JobResult) error {
	// First what a crashed run left recorded but not yet deleted.
	pending, err := a.manifest.Pending(ctx, shop)
	if err != nil {
		return err
	}
	for _, rec := range pending {
		seg, _, err := fetchSegment(ctx, a.blobs, rec)
		if err != nil {
			return err
		}
		if err := a.deleteWarm(ctx, rec, seg.Messages, res); err != nil {
			return err
		}
	}
	if err := sweepGarbage(ctx, a.manifest, a.blobs, shop); err != nil {
		return err
	}
	cutoff := until
	if cutoff.IsZero() {
		days := DefaultArchiveDays
		if a.cfg.Days != nil {
			d, err := a.cfg.Days(ctx, shop)
			if err != nil {
				return fmt.Errorf("archive days: %w", err)
			}
			if d < 0 {
				return fmt.Errorf("archive days %d: want a positive number", d)
			}
			if d > 0 {
				days = d
			}
		}
		cutoff = now.AddDate(0, 0, -days)
	}
	for {
		oldest, ok, err := a.warm.OldestMessageTime(ctx, shop)
		if err != nil || !ok {
			return err
		}
		period, from, to, err := a.cfg.Period.Bounds(oldest)
		if err != nil {
			return err
		}
		if to.After(cutoff) {
			return nil
		}
		if a.cfg.Indexed != nil {
			ok, err := a.cfg.Indexed(ctx, shop, to)
			if err != nil {
				return fmt.Errorf("index cursor: %w", err)
			}
			if !ok { // the next run moves it, once the index job has caught up
				return nil
			}
		}
		moved, err := a.archivePeriod(ctx, shop, period, from, to, res)
		if err != nil {
			return err
		}
		if moved == 0 { // the oldest message is not in its own period: never loop on it
			return fmt.Errorf("oldest message (%s) not found in period %s", oldest.Format(time.RFC3339Nano), period)
		}
	}
}

// archivePeriod moves every warm message of the shop's period into segments, part by part.
func (a *Archiver) archivePeriod(ctx context.Context, shop int64, period string, from, to time.Time, res *JobResult) (moved int64, err error) {
	for {
		if err := ctx.Err(); err != nil {
			return moved, err
		}
		// The part number is taken before the rows are read: a run that read rows another run has
		// since archived then writes under a part number already recorded, and is refused.
		part, err := a.manifest.NextPart(ctx, shop, period)
		if err != nil {
			return moved, err
		}
		msgs, err := a.warm.MessagesBetween(ctx, shop, from, to, a.cfg.PartMessages)
		if err != nil || len(msgs) == 0 {
			return moved, err
		}
		res.Processed += int64(len(msgs))
		// Parts are cut in time order; inside one, messages are kept by conversation for readers.
		slices.SortFunc(msgs, func(x, y session.Message) int {
			if c := cmpInt(x.ConversationID, y.ConversationID); c != 0 {
				return c
			}
			return cmpInt(x.Seq, y.Seq)
		})
		rec, err := writeSegment(ctx, a.blobs, a.prefixed, SegmentHeader{ShopID: shop, Period: period, Part: part}, msgs)
		if err != nil {
			return moved, err
		}
		if err := a.crash("archive.after_verify"); err != nil {
			return moved, err
		}
		rec.State = StateWritten
		if rec, err = a.manifest.Record(ctx, rec, messageKeys(msgs)); err != nil {
			return moved, err
		}
		res.Moved += rec.MessageCount
		moved += rec.MessageCount
		if err := a.crash("archive.after_manifest"); err != nil {
			return moved, err
		}
		if err := a.deleteWarm(ctx, rec, msgs, res); err != nil {
			return moved, err
		}
		ReportProgress(ctx, Progress{Result: *res})
		if len(msgs) < a.cfg.PartMessages {
			return moved, nil
		}
	}
}

// deleteWarm deletes the warm rows of a recorded segment, under the lease, and marks it done.
func (a *Archiver) deleteWarm(ctx context.Context, rec SegmentRecord, msgs []session.Message, res *JobResult) error {
	keys := messageKeys(msgs)
	for len(keys) > 0 {
		n := min(len(keys), 5000)
		if err := a.crash("archive.before_delete"); err != nil {
			return err
		}
		if !LeaseFrom(ctx).Held(ctx) {
			return ErrLeaseLost
		}
		deleted, err := a.warm.DeleteMessages(ctx, keys[:n])
		res.Deleted += deleted
		if err != nil {
			return err
		}
		keys = keys[n:]
	}
	if err := a.crash("archive.after_delete"); err != nil {
		return err
	}
	return a.manifest.MarkDone(ctx, rec.ID)
}

func (a *Archiver) crash(name string) error { return crash(a.cfg.CrashPoint, name) }

// prefixed passes writeSegment's step names to the crash hook under the job's name.
func (a *Archiver) prefixed(name string) error { return a.crash("archive." + name) }

func messageKeys(msgs []session.Message) []session.MessageKey {
	keys := make([]session.MessageKey, len(msgs))
	for i, m := range msgs {
		keys[i] = session.MessageKey{ConversationID: m.ConversationID, Seq: m.Seq}
	}
	return keys
}
