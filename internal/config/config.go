// Package config turns command-line flags, HERALD_* environment variables and
// a TOML config file into one validated Config. A flag given on the command
// line wins over its environment variable, which wins over the file, which
// wins over the default.
package config

import (
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/heraldhq/herald/internal/apptoken"
	"github.com/heraldhq/herald/internal/groups"
	"github.com/heraldhq/herald/internal/store"
)

// Config is everything `herald serve` needs.
type Config struct {
	Addr string
	DB   string
	// DBMaxConns bounds this process's database connections; 0 keeps
	// store.DefaultMaxConns.
	DBMaxConns     int
	DataDir        string
	AllowedOrigins []string
	JWTSecret      string
	AccessTTL      time.Duration
	RefreshTTL     time.Duration
	LogLevel       slog.Level
	LogFormat      string
	Demo           bool
	TrustProxy     bool
	ShutdownGrace  time.Duration
	// Per client address: open real-time connections, and new ones per
	// second (burst twice that). Negative disables.
	MaxConnsPerAddr int
	HandshakeRate   int
	// AdminAddr serves pprof and metrics on a separate address; empty is off.
	AdminAddr string
	// PublicMetrics serves /metrics on the main address too; by default it
	// is on AdminAddr only.
	PublicMetrics bool
	// Admins are the usernames who may see the operations page.
	Admins []string
	// Layer is the channel layer: "memory" (one process) or a redis:// or
	// rediss:// URL (many processes sharing that Redis).
	Layer string
	// RedisSharded makes the Redis layer use Redis Cluster with sharded
	// pub/sub; RedisPrefix starts its key and channel names.
	RedisSharded bool
	RedisPrefix  string
	// PasswordHashes bounds concurrent password hashing (sign-ins and
	// registrations); 0 means runtime.GOMAXPROCS(0).
	PasswordHashes int
	// RegistrationsPerHour bounds the accounts one client address may create
	// in an hour; -1 for no limit.
	RegistrationsPerHour int
	// ChannelsRedis, when set, is the redis:// URL of a Django app's
	// channels_redis layer herald takes the group_send messages of;
	// ChannelsPrefix is that layer's prefix and ChannelsLayer its kind:
	// "core" (RedisChannelLayer) or "pubsub" (RedisPubSubChannelLayer).
	ChannelsRedis  string
	ChannelsPrefix string
	ChannelsLayer  string
	// PublishMaxData bounds the data of one event published with an API
	// key, in bytes; PublishRate is the events per second one key may
	// publish (bursts of twice that), -1 for no limit.
	PublishMaxData int
	PublishRate    int
	// Namespaces are the namespaces the config file adds to the built-in
	// ones, sorted by name; groups.New has accepted them.
	Namespaces []groups.Namespace
	// ConnectURL, when set, is the app's http(s) endpoint herald asks to
	// authorize a connection, answered with the user and their groups;
	// ConnectTimeout bounds each request.
	ConnectURL     string
	ConnectTimeout time.Duration
	// AppTokenSecret (HMAC) and AppTokenKeyPEM (the public keys read from
	// the PEM file AppTokenKey) verify the app's connection and
	// subscription tokens; AppTokenIssuer and AppTokenAudience are the
	// issuer and audience those tokens name. Empty strings are unset.
	AppTokenSecret   string
	AppTokenKey      string
	AppTokenKeyPEM   []byte
	AppTokenIssuer   string
	AppTokenAudience string
	// MediaDir is where uploaded images are stored; empty is the media
	// folder of DataDir (MediaPath). MaxImageBytes bounds one upload.
	MediaDir      string
	MaxImageBytes int64
	// OutboxPartitions is how many partitions the outbox is split into by
	// group (0: store.DefaultOutboxPartitions): on PostgreSQL the relays of
	// several processes publish different partitions at once.
	OutboxPartitions int
}

// defaultOrigins are the origins a local deployment's browsers come from: the
// embedded web app and the usual development servers of a React front end.
const defaultOrigins = "http://localhost:8000,http://127.0.0.1:8000,http://localhost:3000,http://localhost:5173"

// FlagSet declares serve's flags on fs and returns a function that, after
// fs.Parse, resolves them with the environment (getenv) into a Config.
// It opens nothing and creates nothing (it reads only the files --config
// and --app-token-key name): every value that can be checked is checked
// here, so a mistake is reported before herald touches its database.
func FlagSet(fs *flag.FlagSet, getenv func(string) string) func() (Config, error) {
	type opt struct {
		name, env string
		ptr       *string
		list      bool // comma-separated: the config file may give an array
	}
	var opts []opt
	// kind names the value in --help (PrintDefaults): addr, url, duration,
	// int, bytes…; "bool" makes a flag given alone, or as --flag=false.
	str := func(name, kind, def, usage string) *string {
		env := "HERALD_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
		p := new(string)
		*p = def
		fs.Var(flagOption{p: p, kind: kind}, name, usage+" ($"+env+")")
		opts = append(opts, opt{name: name, env: env, ptr: p})
		return p
	}
	list := func(name, kind, def, usage string) *string {
		p := str(name, kind, def, usage)
		opts[len(opts)-1].list = true
		return p
	}
	configFile := str("config", "file", "", "TOML file of settings: flag names as keys, and [namespaces.NAME] tables; flags and environment override it")
	addr := str("addr", "addr", ":8000", "address to listen on")
	db := str("db", "dsn", "sqlite:data/herald.db", "database: sqlite:PATH or postgres://user@host:5432/db")
	dbMaxConns := str("db-max-conns", "int", "0", "database connections this process opens at most; 0 for the default (8)")
	outboxParts := str("outbox-partitions", "int", strconv.Itoa(store.DefaultOutboxPartitions), "partitions of the outbox by group, each published by one relay at a time on PostgreSQL; the same on every process")
	dataDir := str("data-dir", "dir", "data", "directory for herald's own files (the generated JWT secret)")
	origins := list("allowed-origins", "origins", defaultOrigins, "comma-separated origins allowed to call the API and open WebSockets; * allows any")
	secret := str("jwt-secret", "secret", "", "secret for signing tokens, at least 32 bytes; empty generates one and keeps it in the data directory")
	accessTTL := str("access-ttl", "duration", "15m", "lifetime of access tokens")
	refreshTTL := str("refresh-ttl", "duration", "168h", "lifetime of refresh tokens")
	logLevel := str("log-level", "level", "info", "log level: debug, info, warn or error")
	logFormat := str("log-format", "format", "text", "log format: text or json")
	demo := str("demo", "bool", "true", "load demo users, campaigns and quests into an empty database")
	trustProxy := str("trust-proxy", "bool", "false", "take client address and scheme from X-Forwarded-For/-Proto (only behind a proxy that sets them)")
	grace := str("shutdown-grace", "duration", "10s", "how long a stopping server waits for requests and connections to finish")
	admins := list("admins", "names", "", "comma-separated usernames allowed to see the operations page (/api/ops/)")
	layerURL := str("layer", "url", "memory", "channel layer: memory (one process) or redis://host:port/db to run several processes as one")
	redisSharded := str("redis-sharded", "bool", "false", "with a redis layer: the URL names Redis Cluster nodes (redis://host:port?addr=host2:port2); use sharded pub/sub")
	redisPrefix := str("redis-prefix", "prefix", "herald:", "with a redis layer: prefix of its keys and channels (deployments sharing one Redis need distinct ones)")
	adminAddr := str("admin-addr", "addr", "", "address for pprof and metrics (e.g. 127.0.0.1:6060); empty turns it off")
	publicMetrics := str("public-metrics", "bool", "false", "serve /metrics on the main address too (by default only on --admin-addr)")
	maxConns := str("max-conns-per-addr", "int", "1000", "open real-time connections allowed per client address (IPv6: per /64); -1 for no limit")
	handshakeRate := str("handshake-rate", "int", "100", "new real-time connections per second allowed per client address (bursts of twice that); -1 for no limit")
	passwordHashes := str("password-hashes", "int", "0", "password hashes (19 MiB each) run at once; 0 for the number of CPUs")
	registrations := str("registrations-per-hour", "int", "10", "accounts one client address (IPv6: /64) may create per hour; -1 for no limit")
	channelsRedis := str("channels-redis", "url", "", "redis://host:port/db of a Django app's channels_redis layer whose group_send messages herald's clients receive; empty turns it off")
	channelsPrefix := str("channels-prefix", "prefix", "asgi", "with --channels-redis: the layer's prefix setting")
	channelsLayer := str("channels-layer", "kind", "core", "with --channels-redis: core (channels_redis.core.RedisChannelLayer) or pubsub (channels_redis.pubsub.RedisPubSubChannelLayer)")
	publishMaxData := str("publish-max-data", "bytes", "65536", "bytes of data one event published with an API key may have (POST /api/publish/), up to 1048576")
	publishRate := str("publish-rate", "int", "100", "events per second one API key may publish (bursts of twice that); -1 for no limit")
	connectURL := str("connect-url", "url", "", "http(s) URL of the app that authorizes each connection (answering with the user and groups); empty turns it off")
	connectTimeout := str("connect-timeout", "duration", "2s", "how long a --connect-url request may take")
	appSecret := str("app-token-secret", "secret", "", "HMAC secret of the app's connection and subscription tokens, at least 32 bytes")
	appKey := str("app-token-key", "file", "", "PEM file of the public key(s) of the app's connection and subscription tokens")
	appIssuer := str("app-token-issuer", "string", "", "issuer (iss) of the app's tokens")
	appAudience := str("app-token-audience", "string", "", "audience (aud) of the app's tokens")
	mediaDir := str("media-dir", "dir", "", "directory of uploaded images (served at /media/); empty for the data directory's media folder; several processes must share it")
	maxImageBytes := str("max-image-bytes", "bytes", "5242880", "bytes one uploaded image may have, up to 52428800")

	return func() (Config, error) {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		var errs []error
		if !set["config"] {
			if v, ok := lookup(getenv, "HERALD_CONFIG"); ok {
				*configFile = v
			}
		}
		var fromFile map[string]string
		var namespaces []groups.Namespace
		if *configFile != "" {
			flags := map[string]bool{}
			for _, o := range opts {
				if o.name != "config" {
					flags[o.name] = o.list
				}
			}
			var fileErrs []error
			fromFile, namespaces, fileErrs = readFile(*configFile, flags)
			errs = append(errs, fileErrs...)
		}
		for _, o := range opts {
			if set[o.name] {
				continue
			}
			if v, ok := lookup(getenv, o.env); ok {
				*o.ptr = v
			} else if v, ok := fromFile[o.name]; ok {
				*o.ptr = v
			}
		}
		c := Config{Addr: *addr, DB: *db, DataDir: *dataDir, JWTSecret: *secret, LogFormat: *logFormat}
		if err := checkAddr("addr", c.Addr); err != nil {
			errs = append(errs, err)
		}
		for _, a := range strings.Split(*admins, ",") {
			if a = strings.TrimSpace(a); a != "" {
				c.Admins = append(c.Admins, a)
			}
		}
		c.AdminAddr = *adminAddr
		if c.AdminAddr != "" {
			if err := checkAddr("admin-addr", c.AdminAddr); err != nil {
				errs = append(errs, err)
			} else if sameListener(c.Addr, c.AdminAddr) {
				errs = append(errs, fmt.Errorf("--admin-addr %q: the same address as --addr %q; give it another port", c.AdminAddr, c.Addr))
			}
		}
		if err := checkDB(c.DB); err != nil {
			errs = append(errs, err)
		}
		c.Layer, c.RedisPrefix = *layerURL, *redisPrefix
		c.RedisSharded = boolean(&errs, "redis-sharded", *redisSharded)
		if err := checkLayer(c); err != nil {
			errs = append(errs, err)
		}
		for _, o := range strings.Split(*origins, ",") {
			o = strings.TrimSpace(o)
			if o == "" {
				continue
			}
			if o != "*" {
				u, err := url.Parse(o)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
					errs = append(errs, fmt.Errorf("--allowed-origins: %q is not an origin like https://example.com", o))
					continue
				}
				o = u.Scheme + "://" + u.Host
			}
			c.AllowedOrigins = append(c.AllowedOrigins, o)
		}
		if c.JWTSecret != "" && len(c.JWTSecret) < 32 {
			errs = append(errs, errors.New("--jwt-secret: must be at least 32 bytes"))
		}
		c.AccessTTL = duration(&errs, "access-ttl", *accessTTL, time.Minute, 24*time.Hour)
		c.RefreshTTL = duration(&errs, "refresh-ttl", *refreshTTL, time.Hour, 365*24*time.Hour)
		c.ShutdownGrace = duration(&errs, "shutdown-grace", *grace, 0, 10*time.Minute)
		if err := c.LogLevel.UnmarshalText([]byte(*logLevel)); err != nil {
			errs = append(errs, fmt.Errorf("--log-level %q: want debug, info, warn or error", *logLevel))
		}
		if c.LogFormat != "text" && c.LogFormat != "json" {
			errs = append(errs, fmt.Errorf("--log-format %q: want text or json", c.LogFormat))
		}
		if n, err := strconv.Atoi(*dbMaxConns); err != nil || n < 0 || n > 1000 {
			errs = append(errs, fmt.Errorf("--db-max-conns %q: want 1 to 1000, or 0 for the default", *dbMaxConns))
		} else {
			c.DBMaxConns = n
		}
		if n, err := strconv.Atoi(*outboxParts); err != nil || n < 1 || n > store.MaxOutboxPartitions {
			errs = append(errs, fmt.Errorf("--outbox-partitions %q: want 1 to %d", *outboxParts, store.MaxOutboxPartitions))
		} else {
			c.OutboxPartitions = n
		}
		c.MaxConnsPerAddr = integer(&errs, "max-conns-per-addr", *maxConns)
		c.HandshakeRate = integer(&errs, "handshake-rate", *handshakeRate)
		if n, err := strconv.Atoi(*passwordHashes); err != nil || n < 0 || n > 1024 {
			errs = append(errs, fmt.Errorf("--password-hashes %q: want 1 to 1024, or 0 for the number of CPUs", *passwordHashes))
		} else {
			c.PasswordHashes = n
		}
		c.RegistrationsPerHour = integer(&errs, "registrations-per-hour", *registrations)
		c.ChannelsRedis, c.ChannelsPrefix, c.ChannelsLayer = *channelsRedis, *channelsPrefix, *channelsLayer
		errs = append(errs, checkChannels(c)...)
		if n, err := strconv.Atoi(*publishMaxData); err != nil || n < 1 || n > 1<<20 {
			errs = append(errs, fmt.Errorf("--publish-max-data %q: want a number of bytes from 1 to 1048576", *publishMaxData))
		} else {
			c.PublishMaxData = n
		}
		c.PublishRate = integer(&errs, "publish-rate", *publishRate)
		c.Demo = boolean(&errs, "demo", *demo)
		c.TrustProxy = boolean(&errs, "trust-proxy", *trustProxy)
		c.PublicMetrics = boolean(&errs, "public-metrics", *publicMetrics)
		c.Namespaces = namespaces
		if _, err := groups.New(c.Namespaces); err != nil {
			// One error per namespace, each naming the file.
			for _, e := range unjoin(err) {
				errs = append(errs, fmt.Errorf("--config %s: %w", *configFile, e))
			}
		}
		c.ConnectURL = *connectURL
		if c.ConnectURL != "" {
			if err := checkConnectURL(c.ConnectURL); err != nil {
				errs = append(errs, err)
			}
		}
		c.ConnectTimeout = duration(&errs, "connect-timeout", *connectTimeout, 100*time.Millisecond, 30*time.Second)
		c.AppTokenSecret, c.AppTokenKey = *appSecret, *appKey
		c.AppTokenIssuer, c.AppTokenAudience = *appIssuer, *appAudience
		if c.AppTokenSecret != "" && len(c.AppTokenSecret) < 32 {
			errs = append(errs, errors.New("--app-token-secret: must be at least 32 bytes"))
		}
		if c.AppTokenKey != "" {
			pemData, err := readPEM(c.AppTokenKey)
			if err != nil {
				errs = append(errs, err)
			} else if _, err := apptoken.New(apptoken.Config{PublicKeysPEM: pemData}); err != nil {
				errs = append(errs, fmt.Errorf("--app-token-key %s: %w", c.AppTokenKey, err))
			}
			c.AppTokenKeyPEM = pemData
		}
		c.MediaDir = *mediaDir
		if n, err := strconv.ParseInt(*maxImageBytes, 10, 64); err != nil || n < 1024 || n > maxImageLimit {
			errs = append(errs, fmt.Errorf("--max-image-bytes %q: want a number of bytes from 1024 to %d", *maxImageBytes, maxImageLimit))
		} else {
			c.MaxImageBytes = n
		}
		return c, errors.Join(errs...)
	}
}

// maxImageLimit is the largest --max-image-bytes: an upload is held in
// memory while it is checked.
const maxImageLimit = 50 << 20

func lookup(getenv func(string) string, key string) (string, bool) {
	v := getenv(key)
	return v, v != ""
}

// checkConnectURL accepts an absolute http(s) URL with a host, and without
// user info (credentials belong in no URL that ends up in logs) or fragment.
func checkConnectURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return fmt.Errorf("--connect-url %q: want an http:// or https:// URL with a host", s)
	}
	if u.User != nil {
		return fmt.Errorf("--connect-url %q: user info is not allowed", s)
	}
	if err := checkURLPort(u); err != nil {
		return fmt.Errorf("--connect-url %q: %w", s, err)
	}
	if strings.Contains(s, "#") { // url.Parse drops an empty fragment
		return fmt.Errorf("--connect-url %q: a fragment is not allowed", s)
	}
	return nil
}

// readPEM reads the --app-token-key file, which must hold a PEM block.
func readPEM(path string) ([]byte, error) {
	data, err := readLimited(path, maxKeyFile)
	if err != nil {
		return nil, fmt.Errorf("--app-token-key: %w", err)
	}
	if b, _ := pem.Decode(data); b == nil {
		return nil, fmt.Errorf("--app-token-key %s: no PEM block in the file", path)
	}
	return data, nil
}

// unjoin returns the errors errors.Join made err of, or err alone.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func checkDB(dsn string) error {
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		if strings.TrimPrefix(dsn, "sqlite:") == "" {
			return errors.New("--db: sqlite: needs a path, e.g. sqlite:data/herald.db")
		}
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		u, err := url.Parse(dsn)
		if err != nil {
			return fmt.Errorf("--db: bad PostgreSQL URL: %w", err)
		}
		if err := checkURLPort(u); err != nil {
			return fmt.Errorf("--db: %w", err)
		}
	default:
		return errors.New("--db: want sqlite:PATH or postgres://…")
	}
	return nil
}

func checkLayer(c Config) error {
	if c.Layer == "memory" {
		if c.RedisSharded {
			return errors.New("--redis-sharded needs a redis:// --layer")
		}
		return nil
	}
	u, err := url.Parse(c.Layer)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
		return fmt.Errorf("--layer %q: want memory or redis://host:port/db", c.Layer)
	}
	if err := checkURLPort(u); err != nil {
		return fmt.Errorf("--layer %q: %w", c.Layer, err)
	}
	for _, a := range u.Query()["addr"] {
		if err := checkHostPort(a); err != nil {
			return fmt.Errorf("--layer %q: addr=%s: %w", c.Layer, a, err)
		}
	}
	if c.RedisSharded && strings.Trim(u.Path, "/") != "" && strings.Trim(u.Path, "/") != "0" {
		return errors.New("--layer: Redis Cluster has only database 0")
	}
	if c.RedisPrefix == "" || strings.ContainsAny(c.RedisPrefix, "{}") {
		return fmt.Errorf("--redis-prefix %q: want a non-empty prefix without braces", c.RedisPrefix)
	}
	return nil
}

func checkChannels(c Config) []error {
	var errs []error
	if c.ChannelsRedis != "" {
		u, err := url.Parse(c.ChannelsRedis)
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
			errs = append(errs, fmt.Errorf("--channels-redis %q: want redis://host:port/db", c.ChannelsRedis))
		} else if err := checkURLPort(u); err != nil {
			errs = append(errs, fmt.Errorf("--channels-redis %q: %w", c.ChannelsRedis, err))
		}
	}
	if c.ChannelsPrefix == "" || strings.ContainsAny(c.ChannelsPrefix, " \t\r\n") {
		errs = append(errs, fmt.Errorf("--channels-prefix %q: want the layer's prefix (asgi unless set otherwise), without spaces", c.ChannelsPrefix))
	}
	if c.ChannelsLayer != "core" && c.ChannelsLayer != "pubsub" {
		errs = append(errs, fmt.Errorf("--channels-layer %q: want core or pubsub", c.ChannelsLayer))
	}
	return errs
}

func duration(errs *[]error, name, v string, min, max time.Duration) time.Duration {
	d, err := time.ParseDuration(v)
	if err != nil || d < min || d > max {
		*errs = append(*errs, fmt.Errorf("--%s %q: want a duration from %v to %v, like 15m", name, v, min, max))
	}
	return d
}

func integer(errs *[]error, name, v string) int {
	n, err := strconv.Atoi(v)
	if err != nil || n < -1 || n == 0 {
		*errs = append(*errs, fmt.Errorf("--%s %q: want a positive integer, or -1 for no limit", name, v))
	}
	return n
}

func boolean(errs *[]error, name, v string) bool {
	b, err := strconv.ParseBool(v)
	if err != nil {
		*errs = append(*errs, fmt.Errorf("--%s %q: want true or false", name, v))
	}
	return b
}

// checkAddr checks the listening address of the flag name: host:port or
// :port, the port a number from 0 (any free one) to 65535, the host empty
// (every interface), an IP address or a host name.
func checkAddr(name, addr string) error {
	if err := checkHostPort(addr); err != nil {
		return fmt.Errorf("--%s %q: %w", name, addr, err)
	}
	return nil
}

// checkHostPort checks a host:port address (see checkAddr).
func checkHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want host:port or :port, like :8000 or 127.0.0.1:8000")
	}
	if err := checkPort(port); err != nil {
		return err
	}
	if host == "" || validIP(host) {
		return nil
	}
	if !validHostname(host) {
		return fmt.Errorf("%q is neither an IP address nor a host name", host)
	}
	return nil
}

// checkPort accepts a port number from 0 to 65535.
func checkPort(port string) error {
	if port == "" {
		return errors.New("the port is missing")
	}
	n, err := strconv.ParseUint(port, 10, 64)
	if err != nil {
		return fmt.Errorf("port %q is not a number", port)
	}
	if n > 65535 {
		return fmt.Errorf("port %d is out of range (0 to 65535)", n)
	}
	return nil
}

// checkURLPort checks the port of u, when it names one (url.Parse checks
// only that it is made of digits).
func checkURLPort(u *url.URL) error {
	if p := u.Port(); p != "" {
		return checkPort(p)
	}
	return nil
}

// validIP accepts an IP address, with an IPv6 zone (fe80::1%eth0).
func validIP(host string) bool {
	ip, _, _ := strings.Cut(host, "%")
	return net.ParseIP(ip) != nil
}

// validHostname accepts a DNS name's letters, digits, hyphens and dots
// (and underscores, which some internal names have), 253 bytes at most.
func validHostname(host string) bool {
	if len(host) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(host, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

// sameListener reports whether the listening addresses a and b (both
// checked) would take the same port: the same host, or one of them every
// interface, on one non-zero port.
func sameListener(a, b string) bool {
	ha, pa, _ := net.SplitHostPort(a)
	hb, pb, _ := net.SplitHostPort(b)
	na, _ := strconv.Atoi(pa)
	nb, _ := strconv.Atoi(pb)
	if na != nb || na == 0 {
		return false
	}
	// "" and "::" listen on every interface, IPv4 and IPv6.
	everywhere := func(h string) bool { return h == "" || h == "::" }
	return ha == hb || everywhere(ha) || everywhere(hb)
}

// SecretPath is where a generated JWT secret is kept.
func (c Config) SecretPath() string { return filepath.Join(c.DataDir, "jwt-secret") }

// MediaPath is the directory of uploaded images: MediaDir, or the media
// folder of DataDir.
func (c Config) MediaPath() string {
	if c.MediaDir != "" {
		return c.MediaDir
	}
	return filepath.Join(c.DataDir, "media")
}

// Logger builds the configured logger writing to w.
func (c Config) Logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
