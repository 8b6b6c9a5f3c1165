package agent

import (
	"errors"
	"fmt"
)

// Error codes shared by the whole product; the edge maps them to HTTP statuses and error frames.
const (
	EINVALID     = "EINVALID"
	ENOTFOUND    = "ENOTFOUND"
	ECONFLICT    = "ECONFLICT"
	EFORBIDDEN   = "EFORBIDDEN"
	EUNAVAILABLE = "EUNAVAILABLE"
	ETOOLARGE    = "ETOOLARGE"
	EINTERNAL    = "EINTERNAL"
)

// Error is a domain error with a machine-readable code and a message meant for the caller.
type Error struct {
	Code    string
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// ErrorCode returns the code of the error, which the edge maps to a status.
func (e *Error) ErrorCode() string { return e.Code }

// Errorf returns an *Error with the code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// unavailable wraps a backend failure so callers see EUNAVAILABLE and nothing is acknowledged.
func unavailable(err error, what string) error {
	if err == nil {
		return nil
	}
	var de *Error
	if errors.As(err, &de) {
		return err
	}
	return &Error{Code: EUNAVAILABLE, Message: what, Err: err}
}

// ErrorCode returns the code of err, EINTERNAL for errors without one.
func ErrorCode(err error) string {
	var c interface{ ErrorCode() string }
	if errors.As(err, &c) {
		return c.ErrorCode()
	}
	return EINTERNAL
}
