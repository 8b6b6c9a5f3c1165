package archive

import (
	"bytes"
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	"gorm.io/gorm"

	"github.com/shopdesk/shopdesk/session"
)

// DefaultCacheBytes bounds the decoded segments a Cold keeps in memory when no bound is given.
const DefaultCacheBytes = 64 << 20

// Cold reads and erases history in the cold tier: segments in a blob store, found through the
// manifest. Decoded segments are cached, bounded by their decoded size; objects are immutable, so a
// cached segment is never stale.
type Cold struct {
	manifest *Manifest
	blobs    Blobs
	cache    *segmentCache
	loads    singleflight.Group
	// crashPoint, set by tests, is called at each named step of an erasure; an error stops it there.
	crashPoint func(name string) error
}

// NewCold returns the cold tier over the manifest in db and the segments in blobs, caching up to
// cacheBytes of decoded segments (0: DefaultCacheBytes; negative: no cache).
func NewCold(db *gorm.DB, blobs Blobs, cacheBytes int64) *Cold {
	if cacheBytes == 0 {
		cacheBytes = DefaultCacheBytes
	}
	return &Cold{manifest: NewManifest(db), blobs: blobs, cache: newSegmentCache(cacheBytes)}
}

// Manifest returns the manifest the cold tier reads.
func (c *Cold) Manifest() *Manifest { return c.manifest }

// After returns up to limit of the conversation's cold messages with seq > after, in seq order.
func (c *Cold) After(ctx context.Context, conversationID, after int64, limit int) ([]session.Message, error) {
	if limit <= 0 {
		return nil, session.Errorf(session.EINVALID, "limit %d: want a positive number", limit)
	}
	recs, err := c.manifest.ForConversation(ctx, conversationID, after+1, 1<<62)
	if err != nil {
		return nil, unavailable(err)
	}
	var out []session.Message
	for _, rec := range recs {
		// Segments come in first-seq order; once limit messages are in hand and the next segment
		// starts above the last of them, nothing further can come before.
		if len(out) >= limit && rec.Ranges[0].FirstSeq > out[limit-1].Seq {
			break
		}
		seg, err := c.segment(ctx, rec)
		if err != nil {
			return nil, err
		}
		for _, m := range seg.byConv[conversationID] {
			if m.Seq > after {
				out = append(out, m)
			}
		}
		sortDedupe(&out)
	}
	return out[:min(limit, len(out))], nil
}

// Before returns up to limit of the conversation's cold messages with seq < before (the newest of
// them), in seq order.
func (c *Cold) Before(ctx context.Context, conversationID, before int64, limit int) ([]session.Message, error) {
	if limit <= 0 {
		return nil, session.Errorf(session.EINVALID, "limit %d: want a positive number", limit)
	}
	recs, err := c.manifest.ForConversation(ctx, conversationID, 0, before-1)
	if err != nil {
		return nil, unavailable(err)
	}
	slices.SortStableFunc(recs, func(a, b SegmentRecord) int { return cmpInt(b.Ranges[0].LastSeq, a.Ranges[0].LastSeq) })
	var out []session.Message
	for _, rec := range recs {
		if len(out) >= limit && rec.Ranges[0].LastSeq < out[len(out)-limit].Seq {
			break
		}
		seg, err := c.segment(ctx, rec)
		if err != nil {
			return nil, err
		}
		for _, m := range seg.byConv[conversationID] {
			if m.Seq < before {
				out = append(out, m)
			}
		}
		sortDedupe(&out)
	}
	return out[max(0, len(out)-limit):], nil
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func sortDedupe(ms *[]session.Message) {
	slices.SortFunc(*ms, func(a, b session.Message) int { return cmpInt(a.Seq, b.Seq) })
	*ms = slices.CompactFunc(*ms, func(a, b session.Message) bool { return a.Seq == b.Seq })
}

// unavailable marks a backend failure for the edge.
func unavailable(err error) error {
	if err == nil || session.ErrorCode(err) != session.EINTERNAL {
		return err
	}
	return &session.Error{Code: session.EUNAVAILABLE, Message: "cold tier", Err: err}
}

// decoded is a segment held in the cache: its messages by conversation, in seq order.
type decoded struct {
	key    string
	byConv map[int64][]session.Message
	size   int64
}

// segment returns the decoded segment of rec from the cache or the blob store, loading each object
// once however many readers ask at the same time.
func (c *Cold) segment(ctx context.Context, rec SegmentRecord) (*decoded, error) {
	if d := c.cache.get(rec.ObjectKey); d != nil {
		return d, nil
	}
	v, err, _ := c.loads.Do(rec.ObjectKey, func() (any, error) {
		seg, size, err := fetchSegment(ctx, c.blobs, rec)
		if err != nil {
			return nil, err
		}
		d := &decoded{key: rec.ObjectKey, byConv: map[int64][]session.Message{}, size: size}
		for _, m := range seg.Messages {
			d.byConv[m.ConversationID] = append(d.byConv[m.ConversationID], m)
		}
		c.cache.put(d)
		return d, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*decoded), nil
}

// fetchSegment reads rec's object and checks it against the manifest: checksum, header and count. It
// also returns the object's decoded size.
func fetchSegment(ctx context.Context, blobs Blobs, rec SegmentRecord) (Segment, int64, error) {
	r, err := blobs.Get(ctx, rec.ObjectKey)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return Segment{}, 0, &session.Error{Code: session.EINTERNAL, Message: fmt.Sprintf("cold segment %s is in the manifest but not in the blob store", rec.ObjectKey)}
		}
		return Segment{}, 0, unavailable(err)
	}
	data, err := io.ReadAll(io.LimitReader(r, maxSegmentBytes+1))
	r.Close()
	if err != nil {
		return Segment{}, 0, unavailable(fmt.Errorf("read segment %s: %w", rec.ObjectKey, err))
	}
	seg, err := verifySegment(data, rec)
	return seg, int64(len(data)) * 8, err // decoded messages take several times the compressed bytes
}

// verifySegment checks segment bytes against what the manifest row says they are.
func verifySegment(data []byte, rec SegmentRecord) (Segment, error) {
	bad := func(format string, args ...any) error {
		return &session.Error{Code: session.EINTERNAL, Message: fmt.Sprintf("cold segment %s: ", rec.ObjectKey) + fmt.Sprintf(format, args...)}
	}
	if sum := Checksum(data); sum != rec.Checksum {
		return Segment{}, bad("checksum %s, manifest says %s", sum, rec.Checksum)
	}
	seg, err := DecodeSegment(data)
	if err != nil {
		return Segment{}, bad("%v", err)
	}
	h := seg.Header
	if int64(h.Count) != rec.MessageCount || h.ShopID != rec.ShopID || h.Period != rec.Period || h.Part != rec.Part || h.Generation != rec.Generation {
		return Segment{}, bad("header %+v does not match the manifest row", h)
	}
	return seg, nil
}

// segmentCache is an LRU of decoded segments bounded by their estimated size.
type segmentCache struct {
	mu    sync.Mutex
	limit int64
	size  int64
	order *list.List // front: most recently used
	items map[string]*list.Element
}

func newSegmentCache(limit int64) *segmentCache {
	return &segmentCache{limit: limit, order: list.New(), items: map[string]*list.Element{}}
}

func (c *segmentCache) get(key string) *decoded {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.order.MoveToFront(e)
		return e.Value.(*decoded)
	}
	return nil
}

func (c *segmentCache) put(d *decoded) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d.size > c.limit {
		return
	}
	if e, ok := c.items[d.key]; ok {
		c.order.MoveToFront(e)
		return
	}
	c.items[d.key] = c.order.PushFront(d)
	c.size += d.size
	for c.size > c.limit {
		e := c.order.Back()
		old := e.Value.(*decoded)
		c.order.Remove(e)
		delete(c.items, old.key)
		c.size -= old.size
	}
}

// len returns how many segments are cached.
func (c *segmentCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items)
}

// EraseResult counts what an erasure changed in the cold tier.
type EraseResult struct {
	Segments  int   `json:"segments"`
	Rewritten int   `json:"rewritten"`
	Emptied   int   `json:"emptied"`
	Messages  int64 `json:"messages"`
}

// Erase removes every cold message of the shop's given conversations (a buyer's, on request): each
// segment holding any is written again without them under its next generation, the manifest row is
// switched to the new object, and only then is the old object deleted. A rerun after a crash
// finishes the work; it re-checks the run's lease before deleting. Erasing the warm and hot copies
// and the search index is the caller's part.
func (c *Cold) Erase(ctx context.Context, shopID int64, conversationIDs []int64) (EraseResult, error) {
	var res EraseResult
	if shopID <= 0 || len(conversationIDs) == 0 {
		return res, session.Errorf(session.EINVALID, "erase needs a shop and at least one conversation")
	}
	// A crash between switching a row and deleting the old object leaves that object behind, and a
	// rerun no longer finds it through the manifest: garbage is swept first.
	if err := sweepGarbage(ctx, c.manifest, c.blobs, shopID); err != nil {
		return res, err
	}
	recs, err := c.manifest.segmentsOf(ctx, shopID, conversationIDs)
	if err != nil {
		return res, unavailable(err)
	}
	erase := make(map[int64]bool, len(conversationIDs))
	for _, id := range conversationIDs {
		erase[id] = true
	}
	for _, rec := range recs {
		seg, _, err := fetchSegment(ctx, c.blobs, rec)
		if err != nil {
			return res, err
		}
		keep := slices.DeleteFunc(seg.Messages, func(m session.Message) bool { return erase[m.ConversationID] })
		res.Segments++
		res.Messages += rec.MessageCount - int64(len(keep))
		// A segment left empty stays in the manifest with no messages, so its row and object follow
		// the same switch as every rewrite and a crash leaves nothing unaccounted for.
		h := SegmentHeader{ShopID: rec.ShopID, Period: rec.Period, Part: rec.Part, Generation: rec.Generation + 1}
		next, err := writeSegment(ctx, c.blobs, func(n string) error { return crash(c.crashPoint, "erase."+n) }, h, keep)
		if err != nil {
			return res, err
		}
		next.ID, next.State, next.CreatedAt = rec.ID, rec.State, rec.CreatedAt
		if len(keep) == 0 {
			next.FirstTime, next.LastTime = rec.FirstTime, rec.LastTime
		}
		if !LeaseFrom(ctx).Held(ctx) {
			return res, ErrLeaseLost
		}
		if ok, err := c.manifest.Replace(ctx, rec, next); err != nil || !ok {
			return res, errors.Join(unavailable(err), changedErr(ok, rec))
		}
		res.Rewritten++
		if len(keep) == 0 {
			res.Emptied++
		}
		if err := crash(c.crashPoint, "erase.before_delete"); err != nil {
			return res, err
		}
		c.cache.drop(rec.ObjectKey)
		if err := c.blobs.Delete(ctx, rec.ObjectKey); err != nil {
			return res, unavailable(err)
		}
	}
	return res, nil
}

func changedErr(ok bool, rec SegmentRecord) error {
	if ok {
		return nil
	}
	return session.Errorf(session.ECONFLICT, "cold segment %s changed during the erasure; run it again", rec.ObjectKey)
}

func (c *segmentCache) drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.order.Remove(e)
		delete(c.items, key)
		c.size -= e.Value.(*decoded).size
	}
}

// writeSegment encodes msgs, stores them under the segment's deterministic key, reads the object
// back and verifies it, and returns the manifest row that describes it (without ID and state).
func writeSegment(ctx context.Context, blobs Blobs, crashPoint func(string) error, h SegmentHeader, msgs []session.Message) (SegmentRecord, error) {
	data, err := EncodeSegment(h, msgs)
	if err != nil {
		return SegmentRecord{}, &session.Error{Code: session.EINTERNAL, Message: "encode segment", Err: err}
	}
	sum := Checksum(data)
	rec := SegmentRecord{
		ShopID: h.ShopID, Period: h.Period, Part: h.Part, Generation: h.Generation,
		ObjectKey: SegmentKey(h.ShopID, h.Period, h.Part, h.Generation, sum), MessageCount: int64(len(msgs)),
		SizeBytes: int64(len(data)), Checksum: sum, Ranges: ranges(msgs), CreatedAt: time.Now().UTC(),
	}
	for i, m := range msgs {
		t := m.CreatedAt.UTC()
		if i == 0 || t.Before(rec.FirstTime) {
			rec.FirstTime = t
		}
		if t.After(rec.LastTime) {
			rec.LastTime = t
		}
	}
	if err := blobs.Put(ctx, rec.ObjectKey, bytes.NewReader(data), int64(len(data)), "application/zstd"); err != nil {
		return SegmentRecord{}, unavailable(err)
	}
	if err := crash(crashPoint, "after_put"); err != nil {
		return SegmentRecord{}, err
	}
	if _, _, err := fetchSegment(ctx, blobs, rec); err != nil {
		return SegmentRecord{}, fmt.Errorf("read back segment %s: %w", rec.ObjectKey, err)
	}
	return rec, nil
}

// crash calls the crash hook, if any, at a named step.
func crash(hook func(string) error, name string) error {
	if hook == nil {
		return nil
	}
	return hook(name)
}

// sweepGarbage deletes the shop's segment objects that no manifest row can come to record: older
// generations of a recorded part (left by an erasure that stopped after switching the row), objects
// of a recorded part and generation under another key (left by a run that stopped after writing, or
// lost a race, before recording), and objects of expired segments (left by a stopped expiry). Objects of parts not recorded may be a run's work in
// progress and are left alone.
func sweepGarbage(ctx context.Context, m *Manifest, blobs Blobs, shopID int64) error {
	recs, err := m.Segments(ctx, shopID)
	if err != nil {
		return unavailable(err)
	}
	type partKey struct {
		period string
		part   int
	}
	current := map[partKey]SegmentRecord{}
	for _, r := range recs {
		current[partKey{r.Period, r.Part}] = r
	}
	objs, err := blobs.List(ctx, fmt.Sprintf("cold/%d/", shopID))
	if err != nil {
		return unavailable(err)
	}
	for _, o := range objs {
		period, part, gen, ok := parseSegmentKey(shopID, o.Key)
		if !ok {
			continue
		}
		cur, ok := current[partKey{period, part}]
		if !ok || gen > cur.Generation || (o.Key == cur.ObjectKey && cur.State != StateExpired) {
			continue
		}
		if !LeaseFrom(ctx).Held(ctx) {
			return ErrLeaseLost
		}
		if err := blobs.Delete(ctx, o.Key); err != nil {
			return unavailable(err)
		}
	}
	return nil
}

// ExpireResult counts what a retention run removed from the cold tier.
type ExpireResult struct {
	Segments int   `json:"segments"`
	Messages int64 `json:"messages"`
}

// Expire applies retention to the shop's cold tier: every segment whose newest message is older than
// before is marked expired in the manifest (the row stays as the record of the deletion, with its
// counts and time span) and then its object is deleted. Retention works by whole segments, so a
// message goes at most one period after its time. A rerun after a crash finishes the work.
func (c *Cold) Expire(ctx context.Context, shopID int64, before time.Time) (ExpireResult, error) {
	var res ExpireResult
	if shopID <= 0 || before.IsZero() {
		return res, session.Errorf(session.EINVALID, "retention needs a shop and a time")
	}
	recs, err := c.manifest.expiring(ctx, shopID, before)
	if err != nil {
		return res, unavailable(err)
	}
	for _, rec := range recs {
		if !LeaseFrom(ctx).Held(ctx) {
			return res, ErrLeaseLost
		}
		ok, err := c.manifest.expire(ctx, rec)
		if err != nil {
			return res, unavailable(err)
		}
		if !ok {
			continue // expired or rewritten meanwhile; the sweep below deletes what is left
		}
		res.Segments++
		res.Messages += rec.MessageCount
		if err := crash(c.crashPoint, "expire.before_delete"); err != nil {
			return res, err
		}
		c.cache.drop(rec.ObjectKey)
		if err := c.blobs.Delete(ctx, rec.ObjectKey); err != nil {
			return res, unavailable(err)
		}
	}
	return res, sweepGarbage(ctx, c.manifest, c.blobs, shopID)
}
