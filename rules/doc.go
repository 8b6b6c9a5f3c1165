// Package rules will hold the routing rule language: the environment an expr expression sees, compile
// and validate with limits, rule-set versions and schedules. It is pure: no live state, no I/O
// (issue "Shunting engine").
package rules
