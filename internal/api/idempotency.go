package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/heraldhq/herald/internal/platform"
)

// Idempotency-Key (draft-ietf-httpapi-idempotency-key-header): a client
// that sent a POST and got no answer sends it again with the same key; the
// write is applied once, and the retry gets the first answer again.
const (
	idempotencyHeader = "Idempotency-Key"
	replayedHeader    = "Idempotent-Replayed"
	maxKeyLen         = 255
)

// idempotencyKey reads the request's Idempotency-Key: absent, or 1 to 255
// visible ASCII characters, once.
func idempotencyKey(h http.Header) (string, bool, error) {
	vs, ok := h[idempotencyHeader]
	if !ok {
		return "", false, nil
	}
	bad := func(why string) error {
		p := problem(http.StatusBadRequest, "invalid", "the "+idempotencyHeader+" header "+why)
		p.Errors = map[string][]string{idempotencyHeader: {why}}
		return p
	}
	if len(vs) != 1 {
		return "", false, bad("must be sent once")
	}
	k := vs[0]
	if k == "" || len(k) > maxKeyLen {
		return "", false, bad(fmt.Sprintf("must be 1 to %d characters long", maxKeyLen))
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return "", false, bad("must be visible ASCII characters only (no spaces)")
		}
	}
	return k, true, nil
}

// recordsKey says whether rt's requests record their Idempotency-Key:
// signed-in writes do, and publishes, per API key. Sign-ins, refreshes,
// registration and tickets do not: their answers hold credentials, which
// are never stored, and sending them again is harmless (a new token, a new
// ticket; registration answers that the name is taken).
func recordsKey(rt Route) bool {
	return rt.Method == http.MethodPost && (rt.Auth == AuthRequired || rt.Auth == AuthAPIKey) && !rt.Credentials
}

// serveIdempotent runs a POST route, honouring its Idempotency-Key: a
// request whose key was already used is answered from what that use left,
// and the key of one that writes is recorded in its write's transaction.
func (s *Server) serveIdempotent(w http.ResponseWriter, r *http.Request, rt Route) error {
	key, ok, err := idempotencyKey(r.Header)
	if err != nil {
		return err
	}
	if !ok || !recordsKey(rt) {
		return rt.handle(w, r)
	}
	body, err := readBody(r, s.bodyLimit(rt, r))
	if err != nil {
		return err
	}
	req := &platform.IdempotentRequest{UserID: userID(r), Key: key, Hash: requestHash(r, body)}
	if k, ok := apiKeyOf(r); ok {
		req.APIKeyID = k.ID
	}
	if done, err := s.answerFromKey(w, r, req); done || err != nil {
		return err
	}
	rec := &recorder{ResponseWriter: w}
	err = rt.handle(rec, r.WithContext(platform.WithIdempotentRequest(r.Context(), req)))
	if used := (*platform.KeyUsedError)(nil); errors.As(err, &used) {
		// Another request with this key committed while this one ran.
		if done, err := s.answerFromKey(w, r, req); done || err != nil {
			return err
		}
		return inProgress(w)
	}
	if err != nil {
		s.writeProblem(rec, r, err)
	}
	if req.Committed() {
		s.storeResponse(r, req, rec)
	}
	return nil
}

// readBody reads a POST's body (up to limit, else 413) for its hash and
// puts it back for the handler.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, problem(http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("the body is larger than %d bytes", limit))
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, problem(http.StatusBadRequest, "parse_error", "could not read the body: "+err.Error())
	}
	if int64(len(body)) > limit {
		return nil, problem(http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("the body is larger than %d bytes", limit))
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return body, nil
}

// requestHash identifies a request for its key: method, path and body,
// each with its length so no two requests run together alike. A form's
// boundary is left out: it is random, and a client that builds the same
// form again for its retry sends another one.
func requestHash(r *http.Request, body []byte) string {
	if ct := r.Header.Get("Content-Type"); formContentType(ct) {
		if _, params, err := mime.ParseMediaType(ct); err == nil && params["boundary"] != "" {
			body = bytes.ReplaceAll(body, []byte(params["boundary"]), nil)
		}
	}
	h := sha256.New()
	for _, part := range [][]byte{[]byte(r.Method), []byte(r.URL.EscapedPath()), body} {
		_ = binary.Write(h, binary.BigEndian, uint64(len(part)))
		h.Write(part)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// answerFromKey answers req from what its key already holds: the stored
// answer, or why there is none. false when the key is unused.
func (s *Server) answerFromKey(w http.ResponseWriter, r *http.Request, req *platform.IdempotentRequest) (bool, error) {
	rec, found, err := s.p.KeyRecordOf(r.Context(), req)
	if err != nil || !found {
		return false, err
	}
	switch {
	case rec.Hash != req.Hash:
		return true, problem(http.StatusUnprocessableEntity, "idempotency_key_reused",
			"this "+idempotencyHeader+" was used for another request (method, path or body); use a new key for a new request")
	case rec.Response != nil && rec.Response.Body != nil:
		resp := rec.Response
		h := w.Header()
		if resp.ContentType != "" {
			h.Set("Content-Type", resp.ContentType)
		}
		if resp.Location != "" {
			h.Set("Location", resp.Location)
		}
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set(replayedHeader, "true")
		w.WriteHeader(resp.Status)
		_, _ = w.Write(resp.Body)
		return true, nil
	case rec.InFlight:
		return true, inProgress(w)
	default:
		return true, problem(http.StatusConflict, "already_applied",
			"a request with this "+idempotencyHeader+" was applied, but its answer was not kept; read the resource to see its result")
	}
}

// inProgress answers a request whose key's first request has not been
// answered yet: 409, to be sent again after a second.
func inProgress(w http.ResponseWriter) error {
	w.Header().Set("Retry-After", "1")
	return problem(http.StatusConflict, "request_in_progress",
		"a request with this "+idempotencyHeader+" is still being answered; send it again in a moment")
}

// storeResponse keeps the answer rec recorded for req's retries. It runs
// even when the client has gone away, as one whose connection dropped is
// exactly who retries.
func (s *Server) storeResponse(r *http.Request, req *platform.IdempotentRequest, rec *recorder) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
	defer cancel()
	resp := platform.StoredResponse{Status: rec.status, ContentType: rec.header.Get("Content-Type"), Location: rec.header.Get("Location")}
	// An error after the commit, or an answer too large, is not replayed:
	// a retry is told the request was applied.
	if rec.status < 400 && !rec.overflow {
		resp.Body = append([]byte{}, rec.body.Bytes()...) // kept even when empty (204)
	}
	if err := s.p.StoreResponse(ctx, req, resp); err != nil {
		s.log.ErrorContext(ctx, "store the answer of an idempotent request", "path", r.URL.Path, "err", err)
	}
}

// recorder passes a response through and keeps a copy of its status,
// headers and body (up to platform.MaxStoredResponse).
type recorder struct {
	http.ResponseWriter
	status   int
	header   http.Header
	body     bytes.Buffer
	overflow bool
}

func (rc *recorder) WriteHeader(code int) {
	if rc.status == 0 {
		rc.status = code
		rc.header = rc.ResponseWriter.Header().Clone()
	}
	rc.ResponseWriter.WriteHeader(code)
}

func (rc *recorder) Write(b []byte) (int, error) {
	if rc.status == 0 {
		rc.WriteHeader(http.StatusOK)
	}
	if !rc.overflow {
		if rc.body.Len()+len(b) > platform.MaxStoredResponse {
			rc.overflow = true
			rc.body = bytes.Buffer{}
		} else {
			rc.body.Write(b)
		}
	}
	return rc.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the writer underneath.
func (rc *recorder) Unwrap() http.ResponseWriter { return rc.ResponseWriter }
