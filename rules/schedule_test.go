package rules

import (
	"strings"
	"testing"
	"time"
)

func utc(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04", s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestActiveOneOffAcrossZones(t *testing.T) {
	promo := Schedule{Version: 7, TimeZone: "Asia/Shanghai", Start: "2025-11-10T20:00", End: "2025-11-12T02:00"}
	sameWallUTC := Schedule{Version: 8, TimeZone: "UTC", Start: "2025-11-10T20:00", End: "2025-11-12T02:00"}
	ny, _ := time.LoadLocation("America/New_York")
	tests := []struct {
		now   string // UTC
		shop  int    // Shanghai schedule
		utcTZ int    // the same wall clock in UTC
	}{
		{"2025-11-10 11:59", 1, 1},
		{"2025-11-10 12:00", 7, 1}, // 20:00 in Shanghai
		{"2025-11-10 19:59", 7, 1},
		{"2025-11-10 20:00", 7, 8},
		{"2025-11-11 17:59", 7, 8}, // 01:59 on 11-12 in Shanghai
		{"2025-11-11 18:00", 1, 8}, // 02:00: the end is not in the window
		{"2025-11-12 01:59", 1, 8},
		{"2025-11-12 02:00", 1, 1},
	}
	for _, tt := range tests {
		now := utc(tt.now)
		// The answer depends on the instant only, not on the zone the caller's clock reads it in.
		for _, at := range []time.Time{now, now.In(ny), now.Local()} {
			if got := Active([]Schedule{promo}, 1, at); got != tt.shop {
				t.Errorf("Shanghai promotion at %s UTC (%v): version %d, want %d", tt.now, at, got, tt.shop)
			}
		}
		if got := Active([]Schedule{sameWallUTC}, 1, now); got != tt.utcTZ {
			t.Errorf("UTC promotion at %s UTC: version %d, want %d", tt.now, got, tt.utcTZ)
		}
	}
}

// TestActiveIsPure checks that a node that was down when a window opened computes the same version as
// one that watched it open: Active depends on nothing but its arguments.
func TestActiveIsPure(t *testing.T) {
	schedules := []Schedule{
		{Version: 7, TimeZone: "Asia/Shanghai", Start: "2025-11-10T20:00", End: "2025-11-12T02:00"},
		{Version: 4, TimeZone: "Asia/Shanghai", Cron: "0 9 * * 6", Duration: "12h"},
	}
	start := utc("2025-11-10 12:00")
	watched := Active(schedules, 1, start)
	late := Active(schedules, 1, start.Add(29*time.Hour+59*time.Minute))
	if watched != 7 || late != 7 {
		t.Errorf("watching node %d, late node %d; both want 7", watched, late)
	}
	for i := 0; i < 3; i++ {
		if got := Active(schedules, 1, utc("2025-11-15 03:00")); got != 4 { // Saturday 11:00 in Shanghai
			t.Fatalf("Saturday: version %d, want 4", got)
		}
	}
}

func TestActiveCronAcrossDST(t *testing.T) {
	evening := []Schedule{{Version: 3, TimeZone: "America/New_York", Cron: "0 20 * * *", Duration: "2h"}}
	tests := []struct {
		name string
		now  string // UTC
		want int
	}{
		{"19:30 EDT before the switch", "2025-11-01 23:30", 1},
		{"20:30 EDT before the switch", "2025-11-02 00:30", 3},
		{"21:59 EDT before the switch", "2025-11-02 01:59", 3},
		{"22:00 EDT before the switch", "2025-11-02 02:00", 1},
		{"19:30 EST after the switch", "2025-11-03 00:30", 1},
		{"20:00 EST after the switch", "2025-11-03 01:00", 3},
		{"21:30 EST after the switch", "2025-11-03 02:30", 3},
		{"20:30 EST before spring forward", "2025-03-09 01:30", 3},
		{"20:30 EDT after spring forward", "2025-03-10 00:30", 3},
		{"19:30 EDT after spring forward", "2025-03-09 23:30", 1},
	}
	for _, tt := range tests {
		if got := Active(evening, 1, utc(tt.now)); got != tt.want {
			t.Errorf("%s (%s UTC): version %d, want %d", tt.name, tt.now, got, tt.want)
		}
	}

	// A one-off window over the fall-back night lasts 25 hours; 01:30 on that night is its first
	// occurrence (EDT).
	long := []Schedule{{Version: 5, TimeZone: "America/New_York", Start: "2025-11-01T20:00", End: "2025-11-02T20:00"}}
	if got := Active(long, 1, utc("2025-11-03 00:59")); got != 5 { // 19:59 EST
		t.Errorf("25-hour window at 19:59 EST: version %d, want 5", got)
	}
	if got := Active(long, 1, utc("2025-11-03 01:00")); got != 1 {
		t.Errorf("25-hour window at 20:00 EST: version %d, want 1", got)
	}
	ambiguous := []Schedule{{Version: 6, TimeZone: "America/New_York", Start: "2025-11-02T01:30", End: "2025-11-02T03:00"}}
	if got := Active(ambiguous, 1, utc("2025-11-02 05:30")); got != 6 { // 01:30 EDT
		t.Errorf("window from the first 01:30: version %d, want 6", got)
	}
	if got := Active(ambiguous, 1, utc("2025-11-02 05:29")); got != 1 {
		t.Errorf("before the first 01:30: version %d, want 1", got)
	}
}

func TestActiveCronPromotion(t *testing.T) {
	// Every year from 20:00 on 11-10 to 02:00 on 11-12, Shanghai time.
	peak := []Schedule{{Version: 9, TimeZone: "Asia/Shanghai", Cron: "0 20 10 11 *", Duration: "30h"}}
	tests := []struct {
		now  string
		want int
	}{
		{"2025-11-10 11:59", 2},
		{"2025-11-10 12:00", 9},
		{"2025-11-11 04:00", 9},
		{"2025-11-11 17:59", 9},
		{"2025-11-11 18:00", 2},
		{"2026-11-10 12:30", 9},
		{"2026-06-01 12:30", 2},
	}
	for _, tt := range tests {
		if got := Active(peak, 2, utc(tt.now)); got != tt.want {
			t.Errorf("at %s UTC: version %d, want %d", tt.now, got, tt.want)
		}
	}

	// Weekday and weekend sets; 1-5 is Monday to Friday.
	week := []Schedule{
		{Version: 11, TimeZone: "Asia/Shanghai", Cron: "0 9 * * 1-5", Duration: "13h"},
		{Version: 12, TimeZone: "Asia/Shanghai", Cron: "@daily", Duration: "9h"},
	}
	if errs := ValidateSchedules(week, utc("2025-11-01 00:00")); len(errs) != 0 {
		t.Fatalf("valid week rejected: %v", errs)
	}
	for now, want := range map[string]int{
		"2025-11-10 01:00": 11, // Monday 09:00
		"2025-11-10 13:59": 11, // Monday 21:59
		"2025-11-10 14:00": 1,  // Monday 22:00
		"2025-11-10 16:00": 12, // Tuesday 00:00
		"2025-11-15 02:00": 1,  // Saturday 10:00
	} {
		if got := Active(week, 1, utc(now)); got != want {
			t.Errorf("week at %s UTC: version %d, want %d", now, got, want)
		}
	}
}

func TestActiveIgnoresInvalidAndPrefersTheLaterWindow(t *testing.T) {
	now := utc("2025-11-10 12:30")
	schedules := []Schedule{
		{Version: 3, TimeZone: "Mars/Olympus", Start: "2025-11-10T00:00", End: "2025-11-11T00:00"},
		{Version: 4, TimeZone: "UTC", Start: "2025-11-10T00:00", End: "2025-11-11T00:00"},
		{Version: 5, TimeZone: "UTC", Start: "2025-11-10T12:00", End: "2025-11-10T13:00"},
		{Version: 6, TimeZone: "UTC", Cron: "@every 1h", Duration: "30m"},
	}
	if got := Active(schedules, 1, now); got != 5 {
		t.Errorf("version %d, want 5 (the window opened last)", got)
	}
	if got := Active(nil, 1, now); got != 1 {
		t.Errorf("no schedules: version %d, want the fallback", got)
	}
}

func TestValidateSchedules(t *testing.T) {
	now := utc("2025-11-01 00:00")
	sh := func(v int, start, end string) Schedule {
		return Schedule{Version: v, TimeZone: "Asia/Shanghai", Start: start, End: end}
	}
	cr := func(v int, tz, spec, dur string) Schedule {
		return Schedule{Version: v, TimeZone: tz, Cron: spec, Duration: dur}
	}
	tests := []struct {
		name      string
		schedules []Schedule
		schedule  int
		other     int
		msg       string
	}{
		{"one-off windows overlap", []Schedule{sh(2, "2025-11-10T20:00", "2025-11-12T02:00"), sh(3, "2025-11-12T01:00", "2025-11-13T00:00")},
			1, 0, "overlaps schedule 0 (version 2, 2025-11-10T20:00 to 2025-11-12T02:00 in Asia/Shanghai) from 2025-11-12 01:00 CST"},
		{"one-off window inside another", []Schedule{sh(2, "2025-11-10T00:00", "2025-11-20T00:00"), sh(3, "2025-11-12T01:00", "2025-11-13T00:00")},
			1, 0, "overlaps schedule 0"},
		{"cron overlaps a one-off window", []Schedule{cr(2, "Asia/Shanghai", "0 20 * * *", "2h"), sh(3, "2025-12-24T21:00", "2025-12-24T23:00")},
			1, 0, "overlaps schedule 0 (version 2, cron \"0 20 * * *\" for 2h in Asia/Shanghai) from 2025-12-24 21:00 CST"},
		{"crons in two zones overlap", []Schedule{cr(2, "Asia/Shanghai", "0 20 * * *", "2h"), cr(3, "UTC", "30 12 * * 3", "1h")},
			1, 0, "from 2025-11-05 12:30 UTC"},
		{"one-off window far ahead still compared", []Schedule{sh(2, "2030-01-01T00:00", "2030-01-03T00:00"), sh(3, "2030-01-02T00:00", "2030-01-04T00:00")},
			1, 0, "overlaps schedule 0"},
		{"windows of one cron overlap", []Schedule{cr(2, "UTC", "0 * * * *", "2h")}, 0, -1, "windows of one schedule must not overlap"},
		{"too frequent", []Schedule{cr(2, "UTC", "*/5 * * * *", "1m")}, 0, -1, "more than 36000 windows"},
		{"never fires", []Schedule{cr(2, "UTC", "0 0 30 2 *", "1h")}, 0, -1, "opens no window"},
		{"unknown zone", []Schedule{{Version: 2, TimeZone: "Mars/Olympus", Start: "2025-11-10T20:00", End: "2025-11-11T20:00"}}, 0, -1, `unknown time zone "Mars/Olympus"`},
		{"no zone", []Schedule{{Version: 2, Start: "2025-11-10T20:00", End: "2025-11-11T20:00"}}, 0, -1, "time zone is required"},
		{"end before start", []Schedule{sh(2, "2025-11-10T20:00", "2025-11-10T19:00")}, 0, -1, "is not after start"},
		{"bad start", []Schedule{sh(2, "11/10 20:00", "2025-11-10T21:00")}, 0, -1, "start: \"11/10 20:00\" is not a local time"},
		{"no end", []Schedule{sh(2, "2025-11-10T20:00", "")}, 0, -1, "end:"},
		{"start skipped by the clocks", []Schedule{{Version: 2, TimeZone: "America/New_York", Start: "2025-03-09T02:30", End: "2025-03-09T05:00"}},
			0, -1, "2025-03-09T02:30 does not exist in America/New_York"},
		{"both kinds", []Schedule{{Version: 2, TimeZone: "UTC", Start: "2025-11-10T20:00", End: "2025-11-11T20:00", Cron: "0 1 * * *", Duration: "1h"}}, 0, -1, "not both"},
		{"neither kind", []Schedule{{Version: 2, TimeZone: "UTC"}}, 0, -1, "give start and end, or cron and duration"},
		{"bad cron", []Schedule{cr(2, "UTC", "0 25 * * *", "1h")}, 0, -1, `cron "0 25 * * *"`},
		{"six-field cron", []Schedule{cr(2, "UTC", "0 0 20 * * *", "1h")}, 0, -1, "expected exactly 5 fields"},
		{"@every", []Schedule{cr(2, "UTC", "@every 2h", "1h")}, 0, -1, "@every has no fixed start times"},
		{"TZ prefix", []Schedule{cr(2, "UTC", "CRON_TZ=Asia/Tokyo 0 20 * * *", "1h")}, 0, -1, "no TZ= prefix"},
		{"no duration", []Schedule{cr(2, "UTC", "0 20 * * *", "")}, 0, -1, "duration is required"},
		{"bad duration", []Schedule{cr(2, "UTC", "0 20 * * *", "2 hours")}, 0, -1, `duration "2 hours"`},
		{"too short", []Schedule{cr(2, "UTC", "0 20 * * *", "30s")}, 0, -1, "out of range"},
		{"no cron", []Schedule{{Version: 2, TimeZone: "UTC", Duration: "1h"}}, 0, -1, "cron is required"},
		{"no version", []Schedule{sh(0, "2025-11-10T20:00", "2025-11-11T20:00")}, 0, -1, "not a saved version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := ValidateSchedules(tt.schedules, now)
			if len(errs) != 1 {
				t.Fatalf("want one error, got %v", errs)
			}
			e := errs[0]
			if e.Schedule != tt.schedule || e.Other != tt.other || !strings.Contains(e.Message, tt.msg) {
				t.Errorf("got %+v\nwant schedule %d other %d message ~ %q", e, tt.schedule, tt.other, tt.msg)
			}
			if e.ErrorCode() != "EINVALID" || !strings.HasPrefix(e.Error(), "schedule ") {
				t.Errorf("error text %q code %q", e.Error(), e.ErrorCode())
			}
		})
	}

	valid := [][]Schedule{
		{sh(2, "2025-11-10T20:00", "2025-11-12T02:00"), sh(3, "2025-11-12T02:00", "2025-11-13T00:00")}, // touching, not overlapping
		{cr(2, "UTC", "0 9 * * 1-5", "8h"), cr(3, "UTC", "0 9 * * 0,6", "8h")},
		{cr(2, "Asia/Shanghai", "0 20 * * *", "2h"), cr(3, "UTC", "0 14 * * *", "1h")}, // 12:00–14:00 UTC, then 14:00–15:00
		{cr(2, "America/New_York", "0 20 * * *", "2h"), cr(3, "America/New_York", "0 22 * * *", "1h")},
		nil,
	}
	for i, s := range valid {
		if errs := ValidateSchedules(s, now); len(errs) != 0 {
			t.Errorf("valid list %d rejected: %v", i, errs)
		}
	}

	// Several errors come back together, in schedule order.
	errs := ValidateSchedules([]Schedule{sh(2, "2025-11-10T20:00", "2025-11-12T02:00"), {Version: 3}, sh(4, "2025-11-11T00:00", "2025-11-11T01:00"), sh(5, "2025-11-11T00:30", "2025-11-11T03:00")}, now)
	if len(errs) != 4 || errs[0].Schedule != 1 || errs[1].Schedule != 2 || errs[2].Schedule != 3 || errs[3].Schedule != 3 {
		t.Errorf("want errors for schedules 1, 2, 3 and 3, got %v", errs)
	}
}

// BenchmarkActive measures one Active call over a one-off and a cron schedule; the engine can call it
// per decision or cache its answer.
func BenchmarkActive(b *testing.B) {
	schedules := []Schedule{
		{Version: 7, TimeZone: "Asia/Shanghai", Start: "2025-11-10T20:00", End: "2025-11-12T02:00"},
		{Version: 4, TimeZone: "Asia/Shanghai", Cron: "0 9 * * 6", Duration: "12h"},
	}
	now := utc("2025-11-15 03:00")
	b.ReportAllocs()
	for b.Loop() {
		if Active(schedules, 1, now) != 4 {
			b.Fatal("wrong version")
		}
	}
}
