package routing

import (
	"errors"

	"github.com/shopdesk/shopdesk/session"
)

// Routing's errors are the session package's *session.Error, with its codes, so the edge maps them
// in the one place it maps every domain error.
func errorf(code, format string, args ...any) *session.Error {
	return session.Errorf(code, format, args...)
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
	return &session.Error{Code: session.EUNAVAILABLE, Message: what, Err: err}
}

// errorCode returns the code of err, EINTERNAL when it has none.
func errorCode(err error) string { return session.ErrorCode(err) }
