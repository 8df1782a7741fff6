package leader

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Default timings (client-go's usual ones, shortened for a quicker
// failover: a crashed leader is replaced within LeaseDuration).
const (
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	DefaultRetryPeriod   = 2 * time.Second
)

// Elector campaigns for one Lease.
type Elector struct {
	client    kubernetes.Interface
	namespace string
	name      string
	identity  string
	lease     time.Duration
	renew     time.Duration
	retry     time.Duration
	log       *slog.Logger
	leading   atomic.Bool
}

// Option configures an Elector.
type Option func(*Elector)

// WithTimings sets the lease duration, renew deadline and retry period.
func WithTimings(lease, renew, retry time.Duration) Option {
	return func(e *Elector) { e.lease, e.renew, e.retry = lease, renew, retry }
}

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(e *Elector) { e.log = l } }

// New returns an Elector for Lease namespace/name; identity names this
// replica (its pod name, or host name and pid).
func New(client kubernetes.Interface, namespace, name, identity string, opts ...Option) *Elector {
	e := &Elector{
		client: client, namespace: namespace, name: name, identity: identity,
		lease: DefaultLeaseDuration, renew: DefaultRenewDeadline, retry: DefaultRetryPeriod, log: slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		o(e)
	}
	return e
}

// IsLeader reports whether this replica leads now.
func (e *Elector) IsLeader() bool { return e.leading.Load() }

// Identity returns this replica's identity in the Lease.
func (e *Elector) Identity() string { return e.identity }

// Run campaigns until ctx ends, calling lead while leading. It returns nil
// when ctx ends.
func (e *Elector) Run(ctx context.Context, lead func(ctx context.Context)) error {
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: e.namespace, Name: e.name},
		Client:     e.client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: e.identity},
	}
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   e.lease,
		RenewDeadline:   e.renew,
		RetryPeriod:     e.retry,
		ReleaseOnCancel: true,
		Name:            e.name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				e.leading.Store(true)
				e.log.Info("leader: leading", "identity", e.identity, "lease", e.namespace+"/"+e.name)
				lead(ctx)
			},
			OnStoppedLeading: func() {
				if e.leading.Swap(false) {
					e.log.Info("leader: stopped leading", "identity", e.identity)
				}
			},
			OnNewLeader: func(id string) {
				e.log.Info("leader: current leader", "leader", id, "self", id == e.identity)
			},
		},
	})
	if err != nil {
		return fmt.Errorf("leader: %w", err)
	}
	for ctx.Err() == nil {
		le.Run(ctx) // returns when leadership is lost or ctx ends
	}
	return nil
}
