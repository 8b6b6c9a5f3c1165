package routing

import (
	"errors"
	"fmt"

	"github.com/shopdesk/shopdesk/session"
)

// Error is a routing error with a machine-readable code (the session package's codes: EINVALID,
// ENOTFOUND, ECONFLICT, EFORBIDDEN, EUNAVAILABLE) and a message meant for the caller.
type Error struct {
	Code    string
	Message string
	Err     error
}

// Error returns the message, followed by the cause when there is one.
func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// ErrorCode returns the code of the error, which the edge maps to a status.
func (e *Error) ErrorCode() string { return e.Code }

func errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// unavailable wraps a backend failure as EUNAVAILABLE, leaving errors that already carry a code alone.
func unavailable(err error, what string) error {
	if err == nil {
		return nil
	}
	var c interface{ ErrorCode() string }
	if errors.As(err, &c) {
		return err
	}
	return &Error{Code: session.EUNAVAILABLE, Message: what, Err: err}
}

// errorCode returns the code of err, EINTERNAL when it has none.
func errorCode(err error) string { return session.ErrorCode(err) }
