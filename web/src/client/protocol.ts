// The wire protocol of herald's real-time endpoints, as TypeScript types.
//
// v1 is the seeds' protocol exactly: every frame is {"type": T, "data": D}.
// v2 (?v=2) adds "group", "offset" and "epoch" to every event so a client can
// tell where it is in each group's stream. The REST API and the events share
// one serializer per object, so the object types below are also what the
// REST endpoints return.

/** A user as nested in other objects. */
export interface UserRef {
  id: number;
  username: string;
}

/** The signed-in user's own account (GET /api/auth/me/). */
export interface User {
  id: number;
  username: string;
  email: string;
  created_at: string;
}

/** Money is a decimal string such as "100.00", never a float. */
export type Money = string;

export type CampaignStatus = 'draft' | 'active' | 'closed';

export interface Campaign {
  id: number;
  owner: UserRef;
  title: string;
  description: string;
  goal_amount: Money;
  raised_amount: Money;
  currency: string;
  status: CampaignStatus;
  contributions_count: number;
  created_at: string;
  updated_at: string;
}

export interface Contribution {
  id: number;
  campaign: number;
  user: UserRef;
  amount: Money;
  currency: string;
  created_at: string;
}

export interface CampaignUpdate {
  id: number;
  campaign: number;
  title: string;
  content: string;
  /** The uploaded image's URL path (`/media/campaign_updates/<name>`), null when there is none. */
  image: string | null;
  created_at: string;
  updated_at: string;
}

export interface Comment {
  id: number;
  campaign: number;
  user: UserRef;
  content: string;
  created_at: string;
  updated_at: string;
}

/**
 * A comment's removal (`comment_removed`): its author deleted it or the
 * campaign's owner hid it. Drop the comment with this id; it is gone from
 * every list, and replays carry this in its place.
 */
export interface CommentRemovedData {
  id: number;
  campaign: number;
}

/** A user's report of a comment (POST /api/campaigns/<id>/comments/<cid>/report/). */
export interface CommentReport {
  comment: number;
  campaign: number;
  reason: string;
  created_at: string;
}

/** A reported comment, as its campaign's owner reads it (GET /api/campaigns/<id>/reports/). */
export interface ReportedComment {
  comment: Comment;
  reports_count: number;
  last_reported_at: string;
  /** The reports' reasons, newest first (at most 10; reports without one give none). */
  reasons: string[];
}

export interface Release {
  id: number;
  campaign: number;
  version: string;
  title: string;
  notes: string;
  released_at: string;
  updated_at: string;
}

export interface Milestone {
  id: number;
  campaign: number;
  title: string;
  description: string;
  target_amount: Money;
  reached: boolean;
  due_date: string | null;
  created_at: string;
  updated_at: string;
}

/**
 * A campaign's own record changed (`campaign`): its owner edited the title,
 * description, goal, currency or status. The campaign as listed, without its
 * nested lists. A contribution sends none (its own event carries the amount);
 * made a draft again, the room's viewers other than the owner are closed with
 * 4404 right after it.
 */
export type CampaignChangedData = Campaign;

/** A campaign with its relations nested, newest first (at most 50 of each). */
export interface CampaignDetail extends Campaign {
  updates_count: number;
  comments_count: number;
  contributions: Contribution[];
  updates: CampaignUpdate[];
  comments: Comment[];
  releases: Release[];
  milestones: Milestone[];
}

export type QuestStatus = 'open' | 'closed';

export interface Quest {
  id: number;
  creator: UserRef;
  title: string;
  description: string;
  status: QuestStatus;
  applications_count: number;
  created_at: string;
  updated_at: string;
}

export type ApplicationStatus = 'pending' | 'approved' | 'rejected' | 'withdrawn';

export interface Application {
  id: number;
  quest: number;
  quest_title: string;
  applicant: UserRef;
  message: string;
  status: ApplicationStatus;
  created_at: string;
  updated_at: string;
}

// ---- Events of /ws/applications/ ----

/** To a quest's creator when someone applies. */
export interface NewApplicationData {
  application_id: number;
  applicant: string;
  quest_title: string;
  status: ApplicationStatus;
}

/** To the applicant when their application changes. */
export interface ApplicationUpdateData {
  application_id: number;
  quest_title: string;
  status: ApplicationStatus;
  updated_at: string;
}

// ---- Other frames ----

/** Codes of {"type":"error"} frames. */
export type ErrorCode =
  | 'invalid_json'
  | 'invalid_message'
  | 'unknown_type'
  | 'not_found'
  | 'forbidden'
  | 'rate_limited'
  | 'internal_error'
  /** v2: a group name no namespace of the server serves. */
  | 'invalid_group'
  | 'too_many_groups'
  /** v2: the app's subscription token expired (fetch a new one and subscribe again). */
  | 'token_expired'
  /** v2: the app's subscription token is malformed, badly signed or names no group. */
  | 'invalid_token'
  | (string & {});

export interface ErrorData {
  code: ErrorCode;
  message: string;
  /** v2: the id of the client message this error answers. */
  id?: unknown;
}

/** v2: how many are watching a campaign room (at most once a second, on change). */
export interface PresenceData {
  group: string;
  count: number;
}

/**
 * v2: where the client stands in a group it joined, sent for every group
 * (on connect, after a resume's replay, for a subscribe) before the
 * group's live events. recovered false means events of the group were
 * lost; reload it. epoch and offset are the position to resume from, even
 * before the group's first event ("" and 0: from the group's start).
 */
export interface SubscribedData {
  group: string;
  recovered: boolean;
  epoch: string;
  offset: number;
}

/**
 * v2: the server ended the connection's membership of a group, and why:
 * `token_expired` when the subscription token that admitted it ran out
 * (subscribe again with a new token, from the last position, to go on
 * where it stopped).
 */
export interface UnsubscribedData {
  group: string;
  code: ErrorCode;
  message: string;
}

/**
 * v2: what a client publishes to a group its namespace lets it publish to
 * (`{"type":"publish","id":…,"data":{group,type,data}}`, answered by ack or
 * error). Members receive it as `{"type": type, "data": data, group,
 * offset, epoch}`.
 */
export interface PublishData {
  group: string;
  /** The event's type, as members receive it. */
  type: string;
  data: unknown;
}

/** v2: a client message with an "id" was accepted. */
export interface AckData {
  id: unknown;
}

/** Every server message type and its data. */
export interface ServerMessageMap {
  campaign_data: CampaignDetail;
  contribution: Contribution;
  update: CampaignUpdate;
  comment: Comment;
  comment_removed: CommentRemovedData;
  release: Release;
  milestone: Milestone;
  campaign: CampaignChangedData;
  new_application: NewApplicationData;
  application_update: ApplicationUpdateData;
  presence: PresenceData;
  subscribed: SubscribedData;
  unsubscribed: UnsubscribedData;
  ack: AckData;
  error: ErrorData;
}

export type ServerMessageType = keyof ServerMessageMap;

/** A resume list: "group:epoch:offset,…" (the ?resume= parameter and SSE ids). */
export function formatPositions(ps: Iterable<StreamPosition>): string {
  return [...ps].map((p) => `${p.group}:${p.epoch}:${p.offset}`).join(',');
}

/**
 * Reads a resume list ("group:epoch:offset,…"); malformed entries are
 * skipped. Group names may hold ':' (chat:lobby) and epochs never do, so
 * each entry is read from its end: the last two fields are the epoch and
 * the offset, the rest is the group.
 */
export function parsePositions(s: string): StreamPosition[] {
  const out: StreamPosition[] = [];
  for (const part of s.split(',')) {
    const entry = part.trim();
    const o = entry.lastIndexOf(':');
    const e = o > 0 ? entry.lastIndexOf(':', o - 1) : -1;
    if (e <= 0) continue; // no group, or fewer than three fields
    const offset = entry.slice(o + 1);
    if (!/^\d+$/.test(offset)) continue;
    out.push({ group: entry.slice(0, e), epoch: entry.slice(e + 1, o), offset: Number(offset) });
  }
  return out;
}

/** The position of an event in its group's stream (v2 frames only). */
export interface StreamPosition {
  group: string;
  offset: number;
  epoch: string;
}

/** One frame from the server: v1 fields always, v2 position when asked for. */
export type ServerMessage<T extends ServerMessageType = ServerMessageType> = {
  [K in T]: { type: K; data: ServerMessageMap[K] } & Partial<StreamPosition>;
}[T];

/** The object events of a campaign room, which a client may also announce. */
export const ANNOUNCE_TYPES = ['contribution', 'update', 'comment', 'release', 'milestone'] as const;
export type AnnounceType = (typeof ANNOUNCE_TYPES)[number];

/** What a client may send to a campaign room: announce an object it created. */
export interface AnnounceMessage {
  type: AnnounceType;
  data: { id: number };
}

/**
 * v2: join (or resume) one more group the user may see, or leave one. A
 * group of an app's namespace may need the app's subscription token; sent
 * again for a group already joined, with a new token, it renews the
 * subscription (answered by ack only).
 */
export interface SubscribeMessage {
  type: 'subscribe' | 'unsubscribe';
  data: { group: string; epoch?: string; offset?: number; token?: string };
}

/** v2: publish an event to a group (where its namespace allows clients to). */
export interface PublishMessage {
  type: 'publish';
  data: PublishData;
}

/** Any client message: an announce, a subscribe, … (v2: with an optional "id" to be acknowledged). */
export interface ClientMessage {
  type: string;
  data?: unknown;
  [extra: string]: unknown;
}

/** WebSocket close codes herald uses (docs/realtime.md). */
export const CloseCode = {
  Normal: 1000,
  GoingAway: 1001,
  ProtocolError: 1002,
  UnsupportedData: 1003,
  Abnormal: 1006,
  InvalidPayload: 1007,
  PolicyViolation: 1008,
  MessageTooBig: 1009,
  InternalError: 1011,
  ServiceRestart: 1012,
  SlowConsumer: 4000,
  AuthExpired: 4401,
  Forbidden: 4403,
  NotFound: 4404,
  TooManyMessages: 4429,
} as const;

const KNOWN_TYPES: ReadonlySet<string> = new Set<ServerMessageType>([
  'campaign_data',
  'contribution',
  'update',
  'comment',
  'comment_removed',
  'release',
  'milestone',
  'campaign',
  'new_application',
  'application_update',
  'presence',
  'subscribed',
  'unsubscribed',
  'ack',
  'error',
]);

/** Every message type the server sends (the SSE transport listens for each). */
export const SERVER_MESSAGE_TYPES: readonly ServerMessageType[] = [...KNOWN_TYPES] as ServerMessageType[];

/** Whether a parsed frame is a message of a type this client knows. */
export function isServerMessage(v: unknown): v is ServerMessage {
  if (typeof v !== 'object' || v === null) return false;
  const t = (v as { type?: unknown }).type;
  return typeof t === 'string' && KNOWN_TYPES.has(t) && 'data' in v;
}

/** The stream position a v2 frame carries, or null for a v1 frame. */
export function positionOf(m: Partial<StreamPosition>): StreamPosition | null {
  if (typeof m.group === 'string' && typeof m.offset === 'number' && typeof m.epoch === 'string') {
    return { group: m.group, offset: m.offset, epoch: m.epoch };
  }
  return null;
}
