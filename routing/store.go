package routing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/shopdesk/shopdesk/rules"
	"github.com/shopdesk/shopdesk/session"
)

// Store keeps routing's SQL state (SQLite or MySQL, tables of migration 00002_routing): per shop the
// rule-set versions, one draft, the active-version pointer with its audit log, the schedules, and the
// explain traces and shadow results of recent decisions.
//
// A rule set is compiled before it is saved as a version and again before it is activated, so a
// broken rule set is never stored as a version nor put in force; the error is a *rules.ValidationError.
type Store struct {
	db *gorm.DB
	// Now is the clock of created_at columns; time.Now when nil.
	Now func() time.Time
}

// NewStore returns a Store over db, whose schema the migrations created.
func NewStore(db *gorm.DB) *Store { return &Store{db: db} }

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// Version is one saved, valid, never edited rule set of a shop.
type Version struct {
	ShopID int64 `json:"shop_id"`
	// Number counts the shop's versions from 1; 0 is the built-in rules.DefaultRuleSet.
	Number  int           `json:"number"`
	RuleSet rules.RuleSet `json:"rule_set"`
	// Author is the staff id of who saved it.
	Author    int64     `json:"author"`
	Comment   string    `json:"comment,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// RuleSetVersion returns the version in the rules package's form (the author as a decimal id).
func (v Version) RuleSetVersion() rules.RuleSetVersion {
	return rules.RuleSetVersion{Number: v.Number, RuleSet: v.RuleSet, Author: fmt.Sprint(v.Author), Comment: v.Comment, CreatedAt: v.CreatedAt}
}

// Draft is the rule set a shop's managers are editing; it may be invalid unless it runs in shadow.
type Draft struct {
	ShopID  int64         `json:"shop_id"`
	RuleSet rules.RuleSet `json:"rule_set"`
	Author  int64         `json:"author"`
	// Shadow makes every live routing of the shop also evaluate the draft and record whether it would
	// have chosen another agent.
	Shadow    bool      `json:"shadow"`
	UpdatedAt time.Time `json:"updated_at"`
}

// AuditEntry is one change of which rules are in force.
type AuditEntry struct {
	ID     int64  `json:"id"`
	ShopID int64  `json:"shop_id"`
	Action string `json:"action"`
	// Version is the version put in force (0 for schedule changes); Previous the one before.
	Version  int       `json:"version"`
	Previous int       `json:"previous"`
	Actor    int64     `json:"actor"`
	Note     string    `json:"note,omitempty"`
	At       time.Time `json:"at"`
}

// Audit actions.
const (
	ActionPublish  = "publish"
	ActionRollback = "rollback"
	ActionSchedule = "schedule"
)

// MaxCommentBytes bounds version comments and audit notes.
const MaxCommentBytes = 1000

type versionRow struct {
	ID        int64 `gorm:"primaryKey;autoIncrement"`
	ShopID    int64
	Number    int
	RuleSet   string
	Author    int64
	Note      string
	CreatedAt time.Time
}

func (versionRow) TableName() string { return "routing_versions" }

type draftRow struct {
	ShopID    int64 `gorm:"primaryKey;autoIncrement:false"`
	RuleSet   string
	Author    int64
	Shadow    bool
	UpdatedAt time.Time
}

func (draftRow) TableName() string { return "routing_drafts" }

type activeRow struct {
	ShopID    int64 `gorm:"primaryKey;autoIncrement:false"`
	Version   int
	UpdatedBy int64
	UpdatedAt time.Time
}

func (activeRow) TableName() string { return "routing_active" }

type auditRow struct {
	ID        int64 `gorm:"primaryKey;autoIncrement"`
	ShopID    int64
	Action    string
	Version   int
	Previous  int
	Actor     int64
	Note      string
	CreatedAt time.Time
}

func (auditRow) TableName() string { return "routing_audit" }

type scheduleRow struct {
	ShopID    int64 `gorm:"primaryKey;autoIncrement:false"`
	Schedules string
	UpdatedBy int64
	UpdatedAt time.Time
}

func (scheduleRow) TableName() string { return "routing_schedules" }

type traceRow struct {
	ID        int64 `gorm:"primaryKey;autoIncrement"`
	ShopID    int64
	SessionID int64
	CreatedAt time.Time
	Version   int
	RuleName  string
	AgentID   int64
	Outcome   string
	Trace     string
}

func (traceRow) TableName() string { return "routing_traces" }

type shadowRow struct {
	ID          int64 `gorm:"primaryKey;autoIncrement"`
	ShopID      int64
	SessionID   int64
	CreatedAt   time.Time
	LiveVersion int
	LiveRule    string
	LiveAgent   int64
	ShadowRule  string
	ShadowAgent int64
	Differs     bool
}

func (shadowRow) TableName() string { return "routing_shadow" }

func isDuplicate(err error) bool {
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "Duplicate entry") || strings.Contains(msg, "UNIQUE constraint failed")
}

// isDeadlock reports InnoDB's answer to two transactions inserting after the same gap: one of them is
// rolled back and may simply run again.
func isDeadlock(err error) bool {
	return strings.Contains(err.Error(), "Deadlock found") || strings.Contains(err.Error(), "Error 1213")
}

func checkComment(c string) error {
	if len(c) > MaxCommentBytes {
		return errorf(session.EINVALID, "comment is %d bytes long; at most %d are allowed", len(c), MaxCommentBytes)
	}
	return nil
}

// SaveVersion compiles rs and, when it is valid, stores it as the shop's next version. An invalid rule
// set is not stored: the error is a *rules.ValidationError listing every problem.
func (s *Store) SaveVersion(ctx context.Context, shopID int64, rs rules.RuleSet, author int64, comment string) (*Version, error) {
	if _, err := rules.Compile(rs); err != nil {
		return nil, err
	}
	if err := checkComment(comment); err != nil {
		return nil, err
	}
	data, err := json.Marshal(rs)
	if err != nil {
		return nil, errorf(session.EINVALID, "encode rule set: %v", err)
	}
	row := versionRow{ShopID: shopID, RuleSet: string(data), Author: author, Note: comment, CreatedAt: s.now()}
	// Two managers saving at once read the same highest number; the unique key (or InnoDB's deadlock
	// detection) rejects the second, which tries again with the next one.
	for attempt := 0; ; attempt++ {
		err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			var last *int
			if err := tx.Model(&versionRow{}).Where("shop_id = ?", shopID).Select("MAX(number)").Scan(&last).Error; err != nil {
				return err
			}
			row.ID, row.Number = 0, 1
			if last != nil {
				row.Number = *last + 1
			}
			return tx.Create(&row).Error
		})
		if err == nil || !(isDuplicate(err) || isDeadlock(err)) || attempt == 9 {
			break
		}
	}
	if err != nil {
		return nil, unavailable(err, "save rule-set version")
	}
	return &Version{ShopID: shopID, Number: row.Number, RuleSet: rs, Author: author, Comment: comment, CreatedAt: row.CreatedAt}, nil
}

func (r versionRow) version() (*Version, error) {
	var rs rules.RuleSet
	if err := json.Unmarshal([]byte(r.RuleSet), &rs); err != nil {
		return nil, errorf(session.EINTERNAL, "rule-set version %d of shop %d does not decode: %v", r.Number, r.ShopID, err)
	}
	return &Version{ShopID: r.ShopID, Number: r.Number, RuleSet: rs, Author: r.Author, Comment: r.Note, CreatedAt: r.CreatedAt.UTC()}, nil
}

// Version returns the shop's version number; number 0 is the built-in default rule set.
func (s *Store) Version(ctx context.Context, shopID int64, number int) (*Version, error) {
	if number == 0 {
		return &Version{ShopID: shopID, RuleSet: rules.DefaultRuleSet()}, nil
	}
	var row versionRow
	err := s.db.WithContext(ctx).Where("shop_id = ? AND number = ?", shopID, number).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, errorf(session.ENOTFOUND, "rule-set version %d not found", number)
	}
	if err != nil {
		return nil, unavailable(err, "load rule-set version")
	}
	return row.version()
}

// Versions returns up to limit of the shop's versions, newest first.
func (s *Store) Versions(ctx context.Context, shopID int64, limit int) ([]Version, error) {
	if limit <= 0 || limit > 500 {
		limit = 100
	}
	var rows []versionRow
	if err := s.db.WithContext(ctx).Where("shop_id = ?", shopID).Order("number DESC").Limit(limit).Find(&rows).Error; err != nil {
		return nil, unavailable(err, "list rule-set versions")
	}
	out := make([]Version, 0, len(rows))
	for _, r := range rows {
		v, err := r.version()
		if err != nil {
			return nil, err
		}
		out = append(out, *v)
	}
	return out, nil
}

// SaveDraft stores the shop's draft, replacing the previous one, and returns its validation problems
// (none when it compiles). An invalid draft is kept for editing, but may not run in shadow: with
// shadow set, an invalid draft is refused with a *rules.ValidationError and nothing changes.
func (s *Store) SaveDraft(ctx context.Context, shopID int64, rs rules.RuleSet, author int64, shadow bool) ([]rules.FieldError, error) {
	problems := rules.Validate(rs)
	if shadow && len(problems) > 0 {
		return problems, &rules.ValidationError{Errors: problems}
	}
	data, err := json.Marshal(rs)
	if err != nil {
		return nil, errorf(session.EINVALID, "encode rule set: %v", err)
	}
	row := draftRow{ShopID: shopID, RuleSet: string(data), Author: author, Shadow: shadow, UpdatedAt: s.now()}
	err = s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "shop_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"rule_set", "author", "shadow", "updated_at"}),
	}).Create(&row).Error
	return problems, unavailable(err, "save draft")
}

// Draft returns the shop's draft, ENOTFOUND when it has none.
func (s *Store) Draft(ctx context.Context, shopID int64) (*Draft, error) {
	var row draftRow
	err := s.db.WithContext(ctx).Where("shop_id = ?", shopID).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, errorf(session.ENOTFOUND, "shop %d has no draft", shopID)
	}
	if err != nil {
		return nil, unavailable(err, "load draft")
	}
	var rs rules.RuleSet
	if err := json.Unmarshal([]byte(row.RuleSet), &rs); err != nil {
		return nil, errorf(session.EINTERNAL, "draft of shop %d does not decode: %v", shopID, err)
	}
	return &Draft{ShopID: shopID, RuleSet: rs, Author: row.Author, Shadow: row.Shadow, UpdatedAt: row.UpdatedAt.UTC()}, nil
}

// DeleteDraft removes the shop's draft (and so its shadow run).
func (s *Store) DeleteDraft(ctx context.Context, shopID int64) error {
	return unavailable(s.db.WithContext(ctx).Where("shop_id = ?", shopID).Delete(&draftRow{}).Error, "delete draft")
}

// Active returns the number of the shop's active version: 0 (the built-in default) until one is
// published. Schedules may put another version in force at times (rules.Active).
func (s *Store) Active(ctx context.Context, shopID int64) (int, error) {
	var row activeRow
	err := s.db.WithContext(ctx).Where("shop_id = ?", shopID).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, unavailable(err, "load active version")
	}
	return row.Version, nil
}

// Publish makes version number the shop's active version and records who did it.
func (s *Store) Publish(ctx context.Context, shopID int64, number int, actor int64, note string) error {
	return s.activate(ctx, shopID, number, actor, note, ActionPublish)
}

// Rollback makes an earlier version active again and records who did it; going forward is Publish.
func (s *Store) Rollback(ctx context.Context, shopID int64, number int, actor int64, note string) error {
	return s.activate(ctx, shopID, number, actor, note, ActionRollback)
}

func (s *Store) activate(ctx context.Context, shopID int64, number int, actor int64, note, action string) error {
	if err := checkComment(note); err != nil {
		return err
	}
	v, err := s.Version(ctx, shopID, number)
	if err != nil {
		return err
	}
	if _, err := rules.Compile(v.RuleSet); err != nil {
		return err
	}
	now := s.now()
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var cur activeRow
		prev := 0
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("shop_id = ?", shopID).Take(&cur).Error; err == nil {
			prev = cur.Version
		} else if !errors.Is(err, gorm.ErrRecordNotFound) {
			return err
		}
		if action == ActionRollback && number >= prev {
			return errorf(session.EINVALID, "rollback goes back to a version before %d; publish version %d instead", prev, number)
		}
		row := activeRow{ShopID: shopID, Version: number, UpdatedBy: actor, UpdatedAt: now}
		if err := tx.Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "shop_id"}},
			DoUpdates: clause.AssignmentColumns([]string{"version", "updated_by", "updated_at"}),
		}).Create(&row).Error; err != nil {
			return err
		}
		return tx.Create(&auditRow{ShopID: shopID, Action: action, Version: number, Previous: prev, Actor: actor, Note: note, CreatedAt: now}).Error
	})
	return unavailable(err, "activate rule-set version")
}

// Audit returns up to limit of the shop's audit entries, newest first.
func (s *Store) Audit(ctx context.Context, shopID int64, limit int) ([]AuditEntry, error) {
	if limit <= 0 || limit > 500 {
		limit = 100
	}
	var rows []auditRow
	if err := s.db.WithContext(ctx).Where("shop_id = ?", shopID).Order("id DESC").Limit(limit).Find(&rows).Error; err != nil {
		return nil, unavailable(err, "list audit log")
	}
	out := make([]AuditEntry, len(rows))
	for i, r := range rows {
		out[i] = AuditEntry{ID: r.ID, ShopID: r.ShopID, Action: r.Action, Version: r.Version, Previous: r.Previous,
			Actor: r.Actor, Note: r.Note, At: r.CreatedAt.UTC()}
	}
	return out, nil
}

// ScheduleErrors lists why a shop's schedules were refused.
type ScheduleErrors struct {
	Errors []rules.ScheduleError `json:"errors"`
}

// Error joins the errors, one per line.
func (e *ScheduleErrors) Error() string {
	lines := make([]string, len(e.Errors))
	for i, se := range e.Errors {
		lines[i] = se.Error()
	}
	return "invalid schedules: " + strings.Join(lines, "\n")
}

// ErrorCode is EINVALID: the schedules were bad input.
func (e *ScheduleErrors) ErrorCode() string { return session.EINVALID }

// SetSchedules replaces the shop's schedules after checking them (rules.ValidateSchedules at now) and
// that every version they name is saved; it records the change in the audit log. An empty list removes
// every schedule.
func (s *Store) SetSchedules(ctx context.Context, shopID int64, schedules []rules.Schedule, actor int64, now time.Time) error {
	errs := rules.ValidateSchedules(schedules, now)
	for i, sc := range schedules {
		if sc.Version <= 0 {
			continue // reported by ValidateSchedules
		}
		if _, err := s.Version(ctx, shopID, sc.Version); err != nil {
			if errorCode(err) != session.ENOTFOUND {
				return err
			}
			errs = append(errs, rules.ScheduleError{Schedule: i, Other: -1, Message: fmt.Sprintf("version %d is not saved", sc.Version)})
		}
	}
	if len(errs) > 0 {
		return &ScheduleErrors{Errors: errs}
	}
	if schedules == nil {
		schedules = []rules.Schedule{}
	}
	data, err := json.Marshal(schedules)
	if err != nil {
		return errorf(session.EINVALID, "encode schedules: %v", err)
	}
	at := s.now()
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		row := scheduleRow{ShopID: shopID, Schedules: string(data), UpdatedBy: actor, UpdatedAt: at}
		if err := tx.Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "shop_id"}},
			DoUpdates: clause.AssignmentColumns([]string{"schedules", "updated_by", "updated_at"}),
		}).Create(&row).Error; err != nil {
			return err
		}
		return tx.Create(&auditRow{ShopID: shopID, Action: ActionSchedule, Actor: actor,
			Note: fmt.Sprintf("%d schedules", len(schedules)), CreatedAt: at}).Error
	})
	return unavailable(err, "save schedules")
}

// Schedules returns the shop's schedules, none when it has none.
func (s *Store) Schedules(ctx context.Context, shopID int64) ([]rules.Schedule, error) {
	var row scheduleRow
	err := s.db.WithContext(ctx).Where("shop_id = ?", shopID).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, unavailable(err, "load schedules")
	}
	var out []rules.Schedule
	if err := json.Unmarshal([]byte(row.Schedules), &out); err != nil {
		return nil, errorf(session.EINTERNAL, "schedules of shop %d do not decode: %v", shopID, err)
	}
	return out, nil
}

// SaveTraces stores explain traces, in multi-row INSERTs of up to 200 rows: written off the hot path,
// but at the rate of assignments, so straight through database/sql rather than gorm's statement
// builder.
func (s *Store) SaveTraces(ctx context.Context, traces []Trace) error {
	const chunk = 200
	sqlDB, err := s.db.DB()
	if err != nil {
		return unavailable(err, "save traces")
	}
	for len(traces) > 0 {
		n := min(chunk, len(traces))
		var q strings.Builder
		q.WriteString("INSERT INTO routing_traces (shop_id, session_id, created_at, version, rule_name, agent_id, outcome, trace) VALUES ")
		args := make([]any, 0, 8*n)
		for i, t := range traces[:n] {
			data, err := json.Marshal(t)
			if err != nil {
				return errorf(session.EINTERNAL, "encode trace: %v", err)
			}
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteString("(?,?,?,?,?,?,?,?)")
			args = append(args, t.ShopID, t.SessionID, t.At.UTC(), t.Version, t.RuleName, t.AgentID, t.Outcome, string(data))
		}
		if _, err := sqlDB.ExecContext(ctx, q.String(), args...); err != nil {
			return unavailable(err, "save traces")
		}
		traces = traces[n:]
	}
	return nil
}

// Traces returns the traces of a session of the shop, newest first (at most 100).
func (s *Store) Traces(ctx context.Context, shopID, sessionID int64) ([]Trace, error) {
	var rows []traceRow
	err := s.db.WithContext(ctx).Where("shop_id = ? AND session_id = ?", shopID, sessionID).Order("id DESC").Limit(100).Find(&rows).Error
	if err != nil {
		return nil, unavailable(err, "list traces")
	}
	out := make([]Trace, 0, len(rows))
	for _, r := range rows {
		var t Trace
		if err := json.Unmarshal([]byte(r.Trace), &t); err != nil {
			return nil, errorf(session.EINTERNAL, "trace %d does not decode: %v", r.ID, err)
		}
		out = append(out, t)
	}
	return out, nil
}

// TraceRetention is how long traces and shadow results are kept: Prune(now - TraceRetention).
const TraceRetention = 30 * 24 * time.Hour

// Prune deletes traces and shadow results older than before and returns how many rows went.
func (s *Store) Prune(ctx context.Context, before time.Time) (int64, error) {
	db := s.db.WithContext(ctx)
	t := db.Where("created_at < ?", before.UTC()).Delete(&traceRow{})
	if t.Error != nil {
		return 0, unavailable(t.Error, "prune traces")
	}
	sh := db.Where("created_at < ?", before.UTC()).Delete(&shadowRow{})
	return t.RowsAffected + sh.RowsAffected, unavailable(sh.Error, "prune shadow results")
}

// SaveShadowResults stores shadow comparisons in one batch.
func (s *Store) SaveShadowResults(ctx context.Context, results []ShadowResult) error {
	if len(results) == 0 {
		return nil
	}
	rows := make([]shadowRow, len(results))
	for i, r := range results {
		rows[i] = shadowRow{ShopID: r.ShopID, SessionID: r.SessionID, CreatedAt: r.At.UTC(), LiveVersion: r.LiveVersion,
			LiveRule: r.LiveRule, LiveAgent: r.LiveAgent, ShadowRule: r.ShadowRule, ShadowAgent: r.ShadowAgent, Differs: r.Differs}
	}
	return unavailable(s.db.WithContext(ctx).CreateInBatches(rows, 200).Error, "save shadow results")
}

// ShadowResults returns up to limit of the shop's shadow comparisons since a time, newest first, with
// how many there are in all and how many differ.
func (s *Store) ShadowResults(ctx context.Context, shopID int64, since time.Time, limit int) (results []ShadowResult, total, differ int64, err error) {
	if limit <= 0 || limit > 500 {
		limit = 100
	}
	db := s.db.WithContext(ctx)
	q := func() *gorm.DB {
		return db.Model(&shadowRow{}).Where("shop_id = ? AND created_at >= ?", shopID, since.UTC())
	}
	if err := q().Count(&total).Error; err != nil {
		return nil, 0, 0, unavailable(err, "count shadow results")
	}
	if err := q().Where("differs = ?", true).Count(&differ).Error; err != nil {
		return nil, 0, 0, unavailable(err, "count shadow results")
	}
	var rows []shadowRow
	if err := q().Order("id DESC").Limit(limit).Find(&rows).Error; err != nil {
		return nil, 0, 0, unavailable(err, "list shadow results")
	}
	results = make([]ShadowResult, len(rows))
	for i, r := range rows {
		results[i] = ShadowResult{ID: r.ID, ShopID: r.ShopID, SessionID: r.SessionID, At: r.CreatedAt.UTC(), LiveVersion: r.LiveVersion,
			LiveRule: r.LiveRule, LiveAgent: r.LiveAgent, ShadowRule: r.ShadowRule, ShadowAgent: r.ShadowAgent, Differs: r.Differs}
	}
	return results, total, differ, nil
}
