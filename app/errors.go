package app

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/shopdesk/shopdesk/agent"
	"github.com/shopdesk/shopdesk/session"
)

// Error codes of the edge, beyond the domain's.
const (
	codeInvalid     = "EINVALID"
	codeNotFound    = "ENOTFOUND"
	codeConflict    = "ECONFLICT"
	codeForbidden   = "EFORBIDDEN"
	codeUnauth      = "EUNAUTHORIZED"
	codeUnavailable = "EUNAVAILABLE"
	codeTooLarge    = "ETOOLARGE"
	codeRate        = "ERATE"
	codeInternal    = "EINTERNAL"
	codeBadFrame    = "EBADFRAME"
	codeUnknownType = "EUNKNOWNTYPE"
	codeOrigin      = "EORIGIN"
	codeMethod      = "EMETHOD"
)

// edgeError is an error raised by the edge itself (bad JSON, missing auth, …).
type edgeError struct {
	code, msg string
}

func (e *edgeError) Error() string     { return e.msg }
func (e *edgeError) ErrorCode() string { return e.code }

func errorf(code, msg string) error { return &edgeError{code: code, msg: msg} }

// errorCode returns the code of any error: the domain's, the edge's, or EINTERNAL.
func errorCode(err error) string {
	var c interface{ ErrorCode() string }
	if errors.As(err, &c) {
		return c.ErrorCode()
	}
	return codeInternal
}

// errorMessage returns what the caller may see: the domain's own message, never the wrapped backend
// error (addresses, driver text), which goes to the log instead.
func errorMessage(err error) string {
	if errorCode(err) == codeInternal {
		return "internal error"
	}
	var se *session.Error
	if errors.As(err, &se) {
		return se.Message
	}
	var ae *agent.Error
	if errors.As(err, &ae) {
		return ae.Message
	}
	return err.Error()
}

// httpStatus maps an error code to the HTTP status of the REST API. This is the one place that does.
func httpStatus(code string) int {
	switch code {
	case codeInvalid, codeBadFrame, codeUnknownType:
		return http.StatusBadRequest
	case codeNotFound:
		return http.StatusNotFound
	case codeConflict:
		return http.StatusConflict
	case codeForbidden, codeOrigin:
		return http.StatusForbidden
	case codeUnauth:
		return http.StatusUnauthorized
	case codeUnavailable:
		return http.StatusServiceUnavailable
	case codeTooLarge:
		return http.StatusRequestEntityTooLarge
	case codeRate:
		return http.StatusTooManyRequests
	case codeMethod:
		return http.StatusMethodNotAllowed
	}
	return http.StatusInternalServerError
}

// fail writes err as {"error":{"code","message"}} (plus "errors", the itemised problems of a rejected
// rule set or schedule list) with its status and stops the handler chain.
func fail(c *gin.Context, err error) {
	code := errorCode(err)
	body := gin.H{"code": code, "message": errorMessage(err)}
	if details := validationDetails(err); details != nil {
		body["errors"] = details
	}
	c.AbortWithStatusJSON(httpStatus(code), gin.H{"error": body})
}
