package api

import (
	"net/http"

	"github.com/heraldhq/herald/internal/platform"
)

// deleteComment removes the signed-in user's own comment:
// DELETE /api/campaigns/{id}/comments/{oid}/.
func (s *Server) deleteComment(w http.ResponseWriter, r *http.Request) error {
	return removeComment(w, r, s.p.DeleteComment)
}

// hideComment removes a comment from the signed-in owner's campaign:
// POST /api/campaigns/{id}/comments/{oid}/hide/.
func (s *Server) hideComment(w http.ResponseWriter, r *http.Request) error {
	return removeComment(w, r, s.p.HideComment)
}

// removeComment runs a removal of the path's comment and answers 204.
func removeComment(w http.ResponseWriter, r *http.Request, remove func(c ctx, user, id, oid int64) error) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	oid, err := pathID(r, "oid")
	if err != nil {
		return err
	}
	if err := remove(r.Context(), userID(r), id, oid); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// reportComment records the signed-in user's report of a comment:
// POST /api/campaigns/{id}/comments/{oid}/report/.
func (s *Server) reportComment(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	oid, err := pathID(r, "oid")
	if err != nil {
		return err
	}
	var in platform.ReportInput
	if err := decode(w, r, &in); err != nil {
		return err
	}
	return answer[platform.CommentReport](w, http.StatusCreated)(s.p.ReportComment(r.Context(), userID(r), id, oid, in))
}
