package rules

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule makes one rule-set version active in time windows of the shop's time zone, either one
// window (Start to End) or a recurring one (a window of length Duration opening at each occurrence of
// Cron). Windows are half-open: active from the start, inactive from the end on.
type Schedule struct {
	// Version is the RuleSetVersion.Number to activate.
	Version int `json:"version"`
	// TimeZone is the shop's IANA time zone, e.g. "Asia/Shanghai"; Start, End and Cron are read on
	// its wall clock.
	TimeZone string `json:"time_zone"`
	// Start and End bound a one-off window, as "2006-01-02T15:04" or "2006-01-02T15:04:05" local time.
	// A local time that a daylight-saving jump skips is rejected; one that occurs twice (when clocks
	// fall back) is its first occurrence.
	Start string `json:"start,omitempty"`
	End   string `json:"end,omitempty"`
	// Cron is a standard 5-field cron expression (minute hour day-of-month month day-of-week), or a
	// descriptor such as @daily, parsed as robfig/cron v3's ParseStandard does. Not allowed: @every,
	// which has no fixed times, and a TZ= or CRON_TZ= prefix (the zone is TimeZone).
	Cron string `json:"cron,omitempty"`
	// Duration is how long each cron window lasts, in Go's syntax: "6h", "90m", "30h".
	Duration string `json:"duration,omitempty"`
}

// Limits of schedules.
const (
	// ScheduleHorizon is how far ahead ValidateSchedules looks for overlaps of cron windows: the
	// occurrences opening within it are compared with each other and with every one-off window. Two
	// one-off windows are compared whatever their dates.
	ScheduleHorizon = 366 * 24 * time.Hour
	// MaxCronOccurrences is the most occurrences of one cron schedule within the horizon (about one
	// every 15 minutes); more are rejected as a rule-set switch no one means.
	MaxCronOccurrences = 36_000
	// MaxScheduleDuration is the longest cron window.
	MaxScheduleDuration = ScheduleHorizon
)

// horizonDays is ScheduleHorizon in days, for messages.
const horizonDays = int(ScheduleHorizon / (24 * time.Hour))

// ScheduleError is one reason a list of schedules is invalid.
type ScheduleError struct {
	// Schedule is the index of the schedule at fault.
	Schedule int `json:"schedule"`
	// Other is the index of the schedule it overlaps, -1 when the error is not an overlap.
	Other int `json:"other"`
	// Message says what is wrong.
	Message string `json:"message"`
}

// Error formats the error as "schedule 1: …".
func (e ScheduleError) Error() string { return fmt.Sprintf("schedule %d: %s", e.Schedule, e.Message) }

// ErrorCode is EINVALID: the schedule was bad input.
func (e ScheduleError) ErrorCode() string { return codeInvalid }

// parsedSchedule is a Schedule with its times and cron parsed.
type parsedSchedule struct {
	loc        *time.Location
	start, end time.Time // a one-off window when cron is nil
	cron       *cron.SpecSchedule
	dur        time.Duration
}

// window returns the window of p open at now, if any.
func (p parsedSchedule) window(now time.Time) (start time.Time, ok bool) {
	if p.cron == nil {
		return p.start, !now.Before(p.start) && now.Before(p.end)
	}
	// The window opening at t is open at now when now-dur < t ≤ now; Next gives the first t > now-dur.
	t := p.cron.Next(now.In(p.loc).Add(-p.dur))
	return t, !t.IsZero() && !t.After(now)
}

// Active returns the version scheduled at now, or fallback when no schedule is active. It is a pure
// function of its arguments: every node computes the same answer for the same instant, whether or not
// it was up when a window opened. Invalid schedules are ignored (ValidateSchedules rejects them when
// saved); should windows overlap anyway, the one opened last wins, then the earlier in the list.
func Active(schedules []Schedule, fallback int, now time.Time) int {
	version, best := fallback, time.Time{}
	found := false
	for _, s := range schedules {
		p, err := parseSchedule(s)
		if err != nil {
			continue
		}
		start, ok := p.window(now)
		if ok && (!found || start.After(best)) {
			version, best, found = s.Version, start, true
		}
	}
	return version
}

// ValidateSchedules checks each schedule and that no two windows overlap, comparing cron windows over
// ScheduleHorizon from now. It returns every error found, none when the list is valid.
func ValidateSchedules(schedules []Schedule, now time.Time) []ScheduleError {
	var errs []ScheduleError
	type interval struct {
		start, end time.Time
		idx        int
	}
	var ivs []interval
	parsed := make([]parsedSchedule, len(schedules))
	for i, s := range schedules {
		p, err := parseSchedule(s)
		if err == nil && s.Version <= 0 {
			err = fmt.Errorf("version %d is not a saved version number", s.Version)
		}
		if err != nil {
			errs = append(errs, ScheduleError{Schedule: i, Other: -1, Message: err.Error()})
			continue
		}
		parsed[i] = p
		if p.cron == nil {
			ivs = append(ivs, interval{p.start, p.end, i})
			continue
		}
		var own []interval
		horizon := now.Add(ScheduleHorizon)
		bad := ""
		for t := p.cron.Next(now.In(p.loc).Add(-p.dur)); !t.IsZero() && t.Before(horizon); t = p.cron.Next(t) {
			if len(own) == MaxCronOccurrences {
				bad = fmt.Sprintf("cron %q opens more than %d windows in %d days; schedule switches at most every 15 minutes or so",
					s.Cron, MaxCronOccurrences, horizonDays)
				break
			}
			if n := len(own); n > 0 && own[n-1].end.After(t) {
				bad = fmt.Sprintf("each window lasts %v but the next opens %v later, at %s: windows of one schedule must not overlap",
					p.dur, t.Sub(own[n-1].start), t.In(p.loc).Format("2006-01-02 15:04 MST"))
				break
			}
			own = append(own, interval{t, t.Add(p.dur), i})
		}
		if bad == "" && len(own) == 0 {
			bad = fmt.Sprintf("cron %q opens no window in the next %d days", s.Cron, horizonDays)
		}
		if bad != "" {
			errs = append(errs, ScheduleError{Schedule: i, Other: -1, Message: bad})
			continue
		}
		ivs = append(ivs, own...)
	}

	sort.SliceStable(ivs, func(a, b int) bool { return ivs[a].start.Before(ivs[b].start) })
	reported := map[[2]int]bool{}
	var open []interval
	for _, iv := range ivs {
		kept := open[:0]
		for _, o := range open {
			if o.end.After(iv.start) {
				kept = append(kept, o)
			}
		}
		open = kept
		for _, o := range open {
			pair := [2]int{min(o.idx, iv.idx), max(o.idx, iv.idx)}
			if o.idx == iv.idx || reported[pair] {
				continue
			}
			reported[pair] = true
			later, earlier := pair[1], pair[0]
			errs = append(errs, ScheduleError{Schedule: later, Other: earlier, Message: fmt.Sprintf(
				"%s overlaps schedule %d (%s) from %s",
				describe(schedules[later]), earlier, describe(schedules[earlier]),
				iv.start.In(parsed[later].loc).Format("2006-01-02 15:04 MST"))})
		}
		open = append(open, iv)
	}
	sort.SliceStable(errs, func(a, b int) bool { return errs[a].Schedule < errs[b].Schedule })
	return errs
}

// describe names a schedule in an error message.
func describe(s Schedule) string {
	if s.Cron != "" {
		return fmt.Sprintf("version %d, cron %q for %s in %s", s.Version, s.Cron, s.Duration, s.TimeZone)
	}
	return fmt.Sprintf("version %d, %s to %s in %s", s.Version, s.Start, s.End, s.TimeZone)
}

// cronParser reads the standard 5-field syntax and descriptors, as cron.ParseStandard does.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// localLayouts are the accepted forms of Start and End.
var localLayouts = []string{"2006-01-02T15:04", "2006-01-02T15:04:05"}

func parseSchedule(s Schedule) (parsedSchedule, error) {
	var p parsedSchedule
	if s.TimeZone == "" {
		return p, errors.New("time zone is required (an IANA name such as Asia/Shanghai)")
	}
	loc, err := location(s.TimeZone)
	if err != nil {
		return p, fmt.Errorf("unknown time zone %q", s.TimeZone)
	}
	p.loc = loc
	oneOff := s.Start != "" || s.End != ""
	recurring := s.Cron != "" || s.Duration != ""
	switch {
	case oneOff && recurring:
		return p, errors.New("give either start and end, or cron and duration, not both")
	case oneOff:
		if p.start, err = parseLocal(s.Start, loc); err != nil {
			return p, fmt.Errorf("start: %w", err)
		}
		if p.end, err = parseLocal(s.End, loc); err != nil {
			return p, fmt.Errorf("end: %w", err)
		}
		if !p.end.After(p.start) {
			return p, fmt.Errorf("end %s is not after start %s", s.End, s.Start)
		}
		return p, nil
	case recurring:
		spec := strings.TrimSpace(s.Cron)
		if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
			return p, errors.New("cron: no TZ= prefix; the schedule's time zone applies")
		}
		if spec == "" {
			return p, errors.New("cron is required with a duration")
		}
		sched, err := cronParser.Parse(spec)
		if err != nil {
			return p, fmt.Errorf("cron %q: %v", s.Cron, err)
		}
		spc, ok := sched.(*cron.SpecSchedule)
		if !ok {
			return p, fmt.Errorf("cron %q: @every has no fixed start times; use a 5-field expression", s.Cron)
		}
		p.cron = spc
		p.cron.Location = loc
		if s.Duration == "" {
			return p, errors.New("duration is required with a cron")
		}
		if p.dur, err = time.ParseDuration(s.Duration); err != nil {
			return p, fmt.Errorf("duration %q: %v", s.Duration, err)
		}
		if p.dur < time.Minute || p.dur > MaxScheduleDuration {
			return p, fmt.Errorf("duration %s is out of range 1m–%v", s.Duration, MaxScheduleDuration)
		}
		return p, nil
	}
	return p, errors.New("give start and end, or cron and duration")
}

func parseLocal(v string, loc *time.Location) (time.Time, error) {
	for _, layout := range localLayouts {
		t, err := time.ParseInLocation(layout, v, loc)
		if err != nil {
			continue
		}
		if t.Format(layout) != v {
			return time.Time{}, fmt.Errorf("%s does not exist in %s: the clocks jump over it", v, loc)
		}
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not a local time like 2006-01-02T15:04", v)
}

// locations caches time zones: time.LoadLocation reads the zone database from disk on every call.
var locations sync.Map

func location(name string) (*time.Location, error) {
	if l, ok := locations.Load(name); ok {
		return l.(*time.Location), nil
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		return nil, err
	}
	locations.Store(name, l)
	return l, nil
}
