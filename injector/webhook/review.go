package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/api/meshconfig"
	"github.com/weftmesh/weft/injector/inject"
)

// MaxBodyBytes caps an AdmissionReview request body (the API server's own
// request limit is 3 MiB; a review carries the object once on CREATE).
const MaxBodyBytes = 4 << 20

// Handler answers AdmissionReviews for pods with the injection patch.
type Handler struct {
	mesh    meshconfig.Config
	tpl     inject.Template
	logger  *slog.Logger
	maxBody int64
}

var _ http.Handler = (*Handler)(nil)

// HandlerOption configures a Handler.
type HandlerOption func(*Handler)

// WithMaxBodyBytes overrides MaxBodyBytes.
func WithMaxBodyBytes(n int64) HandlerOption { return func(h *Handler) { h.maxBody = n } }

// NewHandler returns a handler that injects with mc and tpl. tpl is
// validated here so a bad flag fails at startup, not per pod.
func NewHandler(mc meshconfig.Config, tpl inject.Template, logger *slog.Logger, opts ...HandlerOption) (*Handler, error) {
	if err := tpl.Validate(); err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	mc = mc.WithDefaults()
	if err := mc.Validate(); err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	h := &Handler{mesh: mc, tpl: tpl, logger: logger, maxBody: MaxBodyBytes}
	for _, o := range opts {
		o(h)
	}
	return h, nil
}

// ServeHTTP implements http.Handler for POST <mesh.InjectorPath>.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && ct != "application/json" {
		http.Error(w, "content type must be application/json", http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, fmt.Sprintf("body over %d bytes", h.maxBody), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	review, err := DecodeReview(body)
	if err != nil {
		h.logger.Warn("bad AdmissionReview", "remote", r.RemoteAddr, "error", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	review.Response = h.Review(review.Request)
	review.Request = nil
	out, err := json.Marshal(review)
	if err != nil {
		http.Error(w, "encode response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}

// DecodeReview parses an admission/v1 AdmissionReview request and checks
// its envelope: apiVersion, kind, a request with a UID. It never panics on
// any input (see FuzzDecodeReview).
func DecodeReview(body []byte) (*admissionv1.AdmissionReview, error) {
	var review admissionv1.AdmissionReview
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&review); err != nil {
		return nil, fmt.Errorf("webhook: decode AdmissionReview: %w", err)
	}
	if dec.More() {
		return nil, errors.New("webhook: decode AdmissionReview: trailing data after the object")
	}
	gv := admissionv1.SchemeGroupVersion.String()
	if review.APIVersion != gv || review.Kind != "AdmissionReview" {
		return nil, fmt.Errorf("webhook: got %s %s, want %s AdmissionReview", review.APIVersion, review.Kind, gv)
	}
	if review.Request == nil {
		return nil, errors.New("webhook: AdmissionReview has no request")
	}
	if review.Request.UID == "" {
		return nil, errors.New("webhook: AdmissionReview request has no uid")
	}
	return &review, nil
}

// Review decides one request. Only pods on CREATE (no subresource) are
// injected; anything else is allowed as it is.
func (h *Handler) Review(req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	resp := &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true}
	isPod := req.Resource.Group == "" && req.Resource.Version == "v1" && req.Resource.Resource == "pods"
	if !isPod || req.SubResource != "" || req.Operation != admissionv1.Create {
		return resp
	}
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		return deny(resp, http.StatusBadRequest, fmt.Sprintf("weft-injector: decode pod: %v", err))
	}
	if pod.Namespace == "" {
		pod.Namespace = req.Namespace
	}
	res, err := inject.Pod(&pod, h.mesh, h.tpl)
	log := h.logger.With("namespace", req.Namespace, "pod", nameOf(&pod), "uid", req.UID, "dryRun", req.DryRun != nil && *req.DryRun)
	if err != nil {
		log.Warn("injection refused", "error", err)
		return deny(resp, http.StatusUnprocessableEntity, "weft-injector: "+err.Error())
	}
	if !res.Injected {
		log.Info("not injected", "reason", res.Skipped)
		return resp
	}
	pt := admissionv1.PatchTypeJSONPatch
	resp.PatchType = &pt
	resp.Patch = res.Patch
	log.Info("injected", "patchBytes", len(res.Patch))
	return resp
}

func deny(resp *admissionv1.AdmissionResponse, code int32, msg string) *admissionv1.AdmissionResponse {
	resp.Allowed = false
	resp.Result = &metav1.Status{Status: metav1.StatusFailure, Code: code, Message: msg}
	return resp
}

func nameOf(p *corev1.Pod) string {
	if p.Name != "" {
		return p.Name
	}
	return p.GenerateName + "*"
}
