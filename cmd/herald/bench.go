package main

import (
	"cmp"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/heraldhq/herald/internal/bench"
)

func benchCmd() *cobra.Command {
	var (
		cfg        bench.Config
		standard   bool
		repeat     int
		flood      bool
		cpuProfile string
		memProfile string
		scenario   string
		soak       time.Duration
		duration   time.Duration
		streams    int
		natsURL    string
		amqpURL    string
		redisAddr  string
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure Herald end to end against a local receiver, with the same-run ceiling",
		Long: `Starts a receiver and a Herald node (embedded SQLite in a temporary directory) in this process,
publishes events through the real API with concurrent publishers (or, with --inbound, posts them as
Standard Webhooks-signed requests to a source's ingest URL, which forwards them), and prints ingest
events/s, end-to-end deliveries/s, publish-to-receipt latency (p50, p95, p99), the ingest answer's
latency (ack p50, p99; inbound only), peak memory, and the ceiling:
a plain Go HTTP client posting the same bodies to the same receiver at the same concurrency.

--standard runs the scenarios recorded in docs/benchmarks.md.

--scenario tenants-hanging runs issue 6's "1,000 endpoints across 100 tenants, 1 % hanging" (100
tenants × 10 healthy endpoints, plus 10 that never answer; --events at --rate, default 6,000 at
100 events/s, so 1,000 deliveries/s for a minute), then the same without the hanging endpoints,
and prints the healthy endpoints' p99 ratio against the 1.2× target.

--scenario batching publishes a backlog (--events, default 20,000) for one endpoint on a local
receiver that holds its requests, then times the drain: once with each event sent on its own,
once with batching (100 events or 50 ms), and prints events/s of each and their ratio.

--scenario hostile-tenant runs issue 14's "hostile tenant": tenant "calm" publishes single events
(--rate, default 100/s) to one endpoint for --duration (default 20 s), first alone, then while
tenant "hostile", through the API with a tenant key of its own, registers endpoints with ten regex
filters and one with a regex transformation, tries to raise its own limits, registers as many
endpoints as it is allowed (--endpoints, default 1,000), opens listen streams it never reads
(--streams, default 30), and publishes batches (--batch, default 200) to every endpoint and large
events (--payload, default 250 KiB) for the regexes and the streams. It prints the calm tenant's
publish p50/p99 and publish-to-receipt p50/p99 in both runs, their ratios against the 1.5× target,
and what each kind of the hostile tenant's requests got (2xx, 4xx, 429, 5xx) and how long it took.

--process runs the Herald node as its own process (this executable's "herald serve", on a
free loopback port, its data in a temporary directory or a schema of --database-url) while the
publishers and the receiver stay in this one: the user's view, where every publish crosses
processes. The node's CPU is then read from /proc and reported alone; --pprof-addr gives the node
a profiling listener for the run. Without --process, the CPU column covers this whole process
(node, publishers and receiver). On PostgreSQL it adds, either way, the CPU of the server's own
processes and of the backends serving the nodes' connections, when the server runs on this machine.

--compare URL delivers to your receiver at URL (it must answer 2xx) instead of the bench's own,
and measures the ceiling against the same URL in the same run, so the ratio compares Herald with
what your receiver takes from a plain client. Latencies are not measured (the bench does not see
arrivals there: it counts the node's successful attempts); backlog drains need the bench's
receiver and are skipped.

Each scenario publishing as fast as it can also measures the ingest ceiling: the same publish
requests from the same publishers to a plain Go server that decodes them with Herald's decoder
and answers 202, storing nothing; "ingest ratio" is Herald's ingest events/s over it.

--soak 10m --rate N publishes at N events/s for the duration and samples the live heap, the
resident set and the goroutine count every 10 s; it prints the samples, their growth from the
first minute to the end, and the usual figures with the ceiling.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			runOnly := standard || scenario == "" || scenario == "tenants-hanging" // the scenarios run by bench.Run
			switch {
			case (cfg.Process || cfg.ReceiverURL != "" || cfg.PprofAddr != "") && !runOnly && soak == 0:
				return fmt.Errorf("--process, --pprof-addr and --compare apply to --standard, --scenario tenants-hanging and single runs")
			case cfg.PprofAddr != "" && !cfg.Process:
				return fmt.Errorf("--pprof-addr profiles the node in its own process: add --process (or use --cpuprofile)")
			case cfg.Process && cpuProfile != "":
				return fmt.Errorf("--cpuprofile profiles this process, not the node: with --process, profile the node through --pprof-addr")
			case cfg.Process && soak > 0:
				return fmt.Errorf("--soak samples the memory of this process: drop --process")
			case cfg.ReceiverURL != "" && soak > 0:
				return fmt.Errorf("--soak counts arrivals at the bench's own receiver: drop --compare")
			}
			if cfg.Process {
				exe, err := os.Executable()
				if err != nil {
					return fmt.Errorf("--process: %w", err)
				}
				cfg.Binary = exe
			}
			switch {
			case soak > 0 && (standard || scenario != ""):
				return fmt.Errorf("--soak runs alone: drop --standard and --scenario")
			case standard && scenario != "":
				return fmt.Errorf("--standard and --scenario are separate runs")
			case soak > 0:
				if cfg.Rate <= 0 {
					return fmt.Errorf("--soak needs a fixed --rate (events per second)")
				}
				sc := bench.Soak(soak, cfg.Rate)
				sc.Synchronous, sc.DatabaseURL, sc.Nodes, sc.QueueDepth = cfg.Synchronous, cfg.DatabaseURL, cfg.Nodes, cfg.QueueDepth
				fmt.Fprintf(os.Stderr, "herald bench on %d CPUs (%s/%s): %s ...\n", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, sc.Name)
				r, err := bench.Run(cmd.Context(), sc)
				if err != nil {
					return fmt.Errorf("soak: %w", err)
				}
				bench.PrintSoak(os.Stdout, r)
				fmt.Println()
				bench.Table(os.Stdout, []*bench.Result{r})
				return nil
			case scenario == "tenants-hanging":
				events, rate := 6000, 100.0
				if cmd.Flags().Changed("events") {
					events = cfg.Events
				}
				if cmd.Flags().Changed("rate") {
					rate = cfg.Rate
				}
				sc := bench.TenantsHanging(events, rate)
				sc.Synchronous, sc.DatabaseURL, sc.Nodes, sc.QueueDepth = cfg.Synchronous, cfg.DatabaseURL, cfg.Nodes, cfg.QueueDepth
				sc.Process, sc.Binary, sc.PprofAddr, sc.ReceiverURL = cfg.Process, cfg.Binary, cfg.PprofAddr, cfg.ReceiverURL
				fmt.Fprintf(os.Stderr, "herald bench on %d CPUs (%s/%s): %s, with and without the hanging endpoints ...\n",
					runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, sc.Name)
				// As with the other scenarios, --repeat reports the run with the median p99 ratio.
				var runs []*bench.Isolation
				for i := range max(repeat, 1) {
					fmt.Fprintf(os.Stderr, "running %q with and without (%d of %d) ...\n", sc.Name, i+1, max(repeat, 1))
					iso, err := bench.RunIsolation(cmd.Context(), sc)
					if err != nil {
						return fmt.Errorf("%s: %w", sc.Name, err)
					}
					runs = append(runs, iso)
				}
				slices.SortFunc(runs, func(a, b *bench.Isolation) int { return cmp.Compare(a.P99Ratio(), b.P99Ratio()) })
				if len(runs) > 1 {
					fmt.Fprintf(os.Stderr, "%s: p99 ratio %.2f to %.2f over %d runs\n", sc.Name, runs[0].P99Ratio(), runs[len(runs)-1].P99Ratio(), len(runs))
				}
				runs[len(runs)/2].Print(os.Stdout)
				return nil
			case scenario == "batching":
				bc := bench.BatchingConfig{Events: 20000, Concurrency: cfg.Concurrency, PayloadSize: cfg.PayloadSize, Synchronous: cfg.Synchronous}
				if cmd.Flags().Changed("events") {
					bc.Events = cfg.Events
				}
				fmt.Fprintf(os.Stderr, "herald bench on %d CPUs (%s/%s): batching, %d events drained by one endpoint without and with batching ...\n",
					runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, bc.Events)
				b, err := bench.RunBatching(cmd.Context(), bc)
				if err != nil {
					return fmt.Errorf("batching: %w", err)
				}
				b.Print(os.Stdout)
				return nil
			case scenario == "hostile-tenant":
				hc := bench.HostileConfig{Duration: duration, Streams: streams, Flood: flood, DatabaseURL: cfg.DatabaseURL, Synchronous: cfg.Synchronous}
				// The shared flags apply when given; otherwise the scenario's own defaults do.
				changed := cmd.Flags().Changed
				if changed("endpoints") {
					hc.Endpoints = cfg.Endpoints
				}
				if changed("batch") {
					hc.Batch = cfg.Batch
				}
				if changed("payload") {
					hc.EventBytes = cfg.PayloadSize
				}
				if changed("rate") {
					hc.Rate = cfg.Rate
				}
				fmt.Fprintf(os.Stderr, "herald bench on %d CPUs (%s/%s): hostile tenant, the calm tenant alone and beside it ...\n",
					runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
				if cpuProfile != "" {
					// The whole run: the calm tenant alone, then beside the hostile one.
					f, err := os.Create(cpuProfile)
					if err != nil {
						return err
					}
					defer f.Close()
					if err := pprof.StartCPUProfile(f); err != nil {
						return fmt.Errorf("cpu profile: %w", err)
					}
					defer pprof.StopCPUProfile()
				}
				// As with the other scenarios, --repeat reports the run with the median ratio
				// (here, of publish-to-receipt p99).
				var runs []*bench.Hostile
				for i := range max(repeat, 1) {
					fmt.Fprintf(os.Stderr, "running the hostile tenant (%d of %d) ...\n", i+1, max(repeat, 1))
					h, err := bench.RunHostile(cmd.Context(), hc)
					if err != nil {
						return fmt.Errorf("hostile tenant: %w", err)
					}
					runs = append(runs, h)
				}
				slices.SortFunc(runs, func(a, b *bench.Hostile) int { return cmp.Compare(a.ReceiptRatio(), b.ReceiptRatio()) })
				if len(runs) > 1 {
					fmt.Fprintf(os.Stderr, "hostile tenant: publish-to-receipt p99 ratio %.2f to %.2f over %d runs\n", runs[0].ReceiptRatio(), runs[len(runs)-1].ReceiptRatio(), len(runs))
				}
				runs[len(runs)/2].Print(os.Stdout)
				return nil
			case scenario == "brokers", scenario == "sources":
				bc := bench.BrokerConfig{NATSURL: natsURL, AMQPURL: amqpURL, RedisAddr: redisAddr, DatabaseURL: cfg.DatabaseURL, Synchronous: cfg.Synchronous}
				changed := cmd.Flags().Changed
				if changed("events") {
					bc.Backlog = cfg.Events
				}
				if changed("rate") {
					bc.Rate = cfg.Rate
				}
				if changed("duration") {
					bc.Duration = duration
				}
				if changed("concurrency") {
					bc.Concurrency = cfg.Concurrency
				}
				if changed("payload") {
					bc.PayloadSize = cfg.PayloadSize
				}
				fmt.Fprintf(os.Stderr, "herald bench on %d CPUs (%s/%s): broker destinations, each against a plain client of the same library ...\n",
					runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
				if cpuProfile != "" {
					f, err := os.Create(cpuProfile)
					if err != nil {
						return err
					}
					defer f.Close()
					if err := pprof.StartCPUProfile(f); err != nil {
						return fmt.Errorf("cpu profile: %w", err)
					}
					defer pprof.StopCPUProfile()
				}
				if scenario == "sources" {
					runs, err := bench.RunSources(cmd.Context(), bc)
					if err != nil {
						return fmt.Errorf("sources: %w", err)
					}
					bench.PrintSources(os.Stdout, bc, runs)
					return nil
				}
				runs, err := bench.RunBrokers(cmd.Context(), bc)
				if err != nil {
					return fmt.Errorf("brokers: %w", err)
				}
				bench.PrintBrokers(os.Stdout, bc, runs)
				return nil
			case scenario == "fanout":
				fc := bench.FanOutConfig{DatabaseURL: cfg.DatabaseURL, Synchronous: cfg.Synchronous}
				if cmd.Flags().Changed("rate") {
					fc.Rate = cfg.Rate
				}
				fmt.Fprintf(os.Stderr, "herald bench on %d CPUs (%s/%s): fanout, one tenant's single publishes alone and while another fans out batches ...\n",
					runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
				f, err := bench.RunFanOut(cmd.Context(), fc)
				if err != nil {
					return fmt.Errorf("fanout: %w", err)
				}
				f.Print(os.Stdout)
				return nil
			case scenario == "endpoint-auth":
				ac := bench.AuthConfig{Synchronous: cfg.Synchronous}
				if cmd.Flags().Changed("events") {
					ac.Events = cfg.Events
				}
				if cmd.Flags().Changed("concurrency") {
					ac.Concurrency = cfg.Concurrency
				}
				if cmd.Flags().Changed("payload") {
					ac.PayloadSize = cfg.PayloadSize
				}
				fmt.Fprintf(os.Stderr, "herald bench on %d CPUs (%s/%s): endpoint authentication, a backlog drained by a plain HTTPS, an OAuth2 and a mutual TLS endpoint ...\n",
					runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
				runs, err := bench.RunEndpointAuth(cmd.Context(), ac)
				if err != nil {
					return fmt.Errorf("endpoint-auth: %w", err)
				}
				bench.AuthTable(os.Stdout, runs)
				return nil
			case scenario != "":
				return fmt.Errorf("unknown --scenario %q (known: tenants-hanging, batching, hostile-tenant, fanout, brokers, sources, endpoint-auth)", scenario)
			}
			scenarios := []bench.Config{cfg}
			if standard {
				scenarios = []bench.Config{
					{Name: "ingest, single-event API", Events: 20000, Publishers: 32, Endpoints: 1, Concurrency: 10},
					{Name: "one endpoint, batch publish", Events: 50000, Publishers: 4, Batch: 100, Endpoints: 1, Concurrency: 10},
					{Name: "one endpoint, backlog drain", Events: 50000, Publishers: 4, Batch: 100, Endpoints: 1, Concurrency: 10, Drain: true},
					{Name: "one endpoint, 1000 ev/s", Events: 10000, Publishers: 32, Endpoints: 1, Concurrency: 10, Rate: 1000},
					{Name: "fan-out 100, batch publish", Events: 300, Publishers: 8, Batch: 10, Endpoints: 100, Concurrency: 10},
					{Name: "fan-out 100, backlog drain", Events: 300, Publishers: 8, Batch: 10, Endpoints: 100, Concurrency: 10, Drain: true},
					{Name: "fan-out 100, 10 ev/s", Events: 200, Publishers: 8, Endpoints: 100, Concurrency: 10, Rate: 10},
					{Name: "isolation: 9 healthy, 100 ev/s", Events: 3000, Publishers: 8, Endpoints: 9, Concurrency: 10, Rate: 100},
					{Name: "isolation: 9 healthy + 1 hanging", Events: 3000, Publishers: 8, Endpoints: 9, Hanging: 1, Concurrency: 10, Rate: 100},
					{Name: "inbound: verified source, 500 req/s", Events: 10000, Publishers: 32, Endpoints: 1, Concurrency: 10, Rate: 500, Inbound: true},
					{Name: "inbound: verified source, max rate", Events: 20000, Publishers: 32, Endpoints: 1, Concurrency: 10, Inbound: true},
				}
			}
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				startProfile := func() {
					if err := pprof.StartCPUProfile(f); err != nil {
						fmt.Fprintln(os.Stderr, "cpu profile:", err)
					}
				}
				if len(scenarios) == 1 && scenarios[0].Drain {
					scenarios[0].OnDrain = startProfile // profile the engine, not the ingest
				} else {
					startProfile()
				}
				defer pprof.StopCPUProfile()
			}
			fmt.Fprintf(os.Stderr, "herald bench on %d CPUs (%s/%s)%s\n", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, modeNote(cfg))
			var results []*bench.Result
			for _, sc := range scenarios {
				if sc.Name == "" {
					sc.Name = "custom"
				}
				if sc.Drain && cfg.ReceiverURL != "" {
					if standard {
						fmt.Fprintf(os.Stderr, "skipping %q: a backlog drain holds the requests at the bench's own receiver\n", sc.Name)
						continue
					}
					return fmt.Errorf("--drain holds the requests at the bench's own receiver: it cannot run with --compare")
				}
				sc.Synchronous = cfg.Synchronous
				sc.DatabaseURL, sc.Nodes = cfg.DatabaseURL, cfg.Nodes
				sc.Process, sc.Binary, sc.PprofAddr, sc.ReceiverURL = cfg.Process, cfg.Binary, cfg.PprofAddr, cfg.ReceiverURL
				if cfg.QueueDepth > 0 {
					sc.QueueDepth = cfg.QueueDepth
				}
				// Runs on a shared two-core machine vary; with --repeat the run with the median
				// ratio is reported, and the spread is printed.
				var runs []*bench.Result
				for i := range max(repeat, 1) {
					fmt.Fprintf(os.Stderr, "running %q (%d of %d) ...\n", sc.Name, i+1, max(repeat, 1))
					r, err := bench.Run(cmd.Context(), sc)
					if err != nil {
						return fmt.Errorf("%s: %w", sc.Name, err)
					}
					runs = append(runs, r)
				}
				slices.SortFunc(runs, func(a, b *bench.Result) int { return cmp.Compare(a.Ratio, b.Ratio) })
				if len(runs) > 1 {
					fmt.Fprintf(os.Stderr, "%s: ratio %.2f to %.2f over %d runs\n", sc.Name, runs[0].Ratio, runs[len(runs)-1].Ratio, len(runs))
				}
				results = append(results, runs[len(runs)/2])
			}
			if memProfile != "" {
				f, err := os.Create(memProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
					return err
				}
			}
			bench.Table(os.Stdout, results)
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Events, "events", 10000, "events to publish")
	f.IntVar(&cfg.Publishers, "publishers", 16, "concurrent publishers")
	f.IntVar(&cfg.Endpoints, "endpoints", 1, "endpoints subscribed to every event (fan-out)")
	f.IntVar(&cfg.Hanging, "hanging", 0, "extra endpoints that never answer (to show they delay no one)")
	f.IntVar(&cfg.Concurrency, "concurrency", 10, "max_concurrency of each endpoint")
	f.IntVar(&cfg.QueueDepth, "queue-depth", 0, "rounds of an endpoint's concurrency a lane claims ahead (0: the node's default)")
	f.Float64Var(&cfg.Rate, "rate", 0, "events per second over all publishers (0: as fast as possible)")
	f.IntVar(&cfg.Batch, "batch", 1, "events per publish request (1: single-event API; more: batch API)")
	f.StringVar(&cfg.DatabaseURL, "database-url", "", "run on PostgreSQL (a schema of its own, dropped afterwards) instead of SQLite")
	f.IntVar(&cfg.Nodes, "nodes", 1, "Herald nodes sharing the PostgreSQL database; publishers spread over them")
	f.BoolVar(&cfg.Inbound, "inbound", false, "post the events as signed webhooks to a source's ingest URL (receiving side) instead of publishing them")
	f.BoolVar(&cfg.Drain, "drain", false, "publish first while the receiver holds requests, then time the engine draining the backlog")
	f.IntVar(&cfg.PayloadSize, "payload", 512, "bytes of data per event")
	f.StringVar(&cfg.Synchronous, "sqlite-synchronous", "FULL", "SQLite synchronous pragma for the run")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file")
	f.StringVar(&memProfile, "memprofile", "", "write an allocation profile of the run to this file")
	f.IntVar(&repeat, "repeat", 1, "run each scenario this many times and report the run with the median ratio")
	f.BoolVar(&standard, "standard", false, "run the standard scenarios of docs/benchmarks.md")
	f.StringVar(&scenario, "scenario", "", "run a named scenario: tenants-hanging (100 tenants, 1 % hanging endpoints, with and without); batching (one endpoint drains a backlog without and with batching, 100 events or 50 ms); hostile-tenant (a calm tenant's latencies alone and beside a hostile one); fanout (a tenant's single publishes at --rate, 100/s, alone and while another tenant publishes 200-event batches to 100 endpoints back to back); brokers (for each broker given an address, an endpoint of its type drains a backlog of --events, 20,000, then takes --rate, 1,000/s, for --duration, 10 s, each against a plain client of the same library); sources (for each broker given an address, a source takes a backlog of --events, 20,000, against the batch publish API's rate); endpoint-auth (a plain HTTPS, an OAuth2 and a mutual TLS endpoint each drain a backlog of --events, 20,000: CPU per delivery against the plain one's)")
	f.StringVar(&natsURL, "nats-url", "", "brokers: a NATS server with JetStream, e.g. nats://127.0.0.1:4222")
	f.StringVar(&amqpURL, "amqp-url", "", "brokers: a RabbitMQ server, e.g. amqp://guest:guest@127.0.0.1:5672/")
	f.StringVar(&redisAddr, "redis-addr", "", "brokers: a Redis server, e.g. 127.0.0.1:6379")
	f.DurationVar(&soak, "soak", 0, "publish at --rate for this long, sampling memory and goroutines every 10 s")
	f.DurationVar(&duration, "duration", bench.DefaultHostileDuration, "hostile-tenant: how long the calm tenant publishes")
	f.IntVar(&streams, "streams", bench.DefaultHostileStreams, "hostile-tenant: listen streams the hostile tenant opens and never reads")
	f.BoolVar(&flood, "flood", false, "hostile-tenant: the hostile tenant ignores 429s and sends again at once (without it, it waits a second, as Retry-After says)")
	f.IntVar(&cfg.Tenants, "tenants", 1, "tenants the events are spread over, each with --endpoints endpoints")
	f.BoolVar(&cfg.Process, "process", false, "run the Herald node as its own process (herald serve), the publishers and the receiver in this one; the CPU column is then the node's alone")
	f.StringVar(&cfg.PprofAddr, "pprof-addr", "", "with --process: the node serves Go profiles on this loopback address for the run (herald serve --pprof-addr)")
	f.StringVar(&cfg.ReceiverURL, "compare", "", "deliver to your receiver at this URL (it must answer 2xx) and measure the ceiling against it in the same run; no latencies")
	return cmd
}

// modeNote says where the node runs and where it delivers, for the first line of a run.
func modeNote(cfg bench.Config) string {
	note := ", the node in this process"
	if cfg.Process {
		note = ", the node in its own process"
	}
	if cfg.ReceiverURL != "" {
		note += ", delivering to " + cfg.ReceiverURL
	}
	return note
}
