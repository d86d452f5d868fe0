import { useCallback, useRef, useSyncExternalStore } from 'react';
import {
  ANNOUNCE_TYPES,
  CloseCode,
  type AnnounceType,
  type CampaignDetail,
  type ConnectionState,
  type ErrorData,
  type HeraldClient,
  type ServerMessage,
} from '@herald/client';
import { applyCampaignMessage } from './campaignState';
import { useConnectionState, useHeraldClient } from './useHeraldClient';

export interface RoomSnapshot {
  /**
   * The campaign as shown; null until it is loaded, and again once the room
   * was closed with 4404 (the campaign was made a draft again, or deleted:
   * error says not_found).
   */
  campaign: CampaignDetail | null;
  /** How many are watching; null until the server's first presence count. */
  presence: number | null;
  /** The last error the server sent (e.g. not_found before closing 4404). */
  error: ErrorData | null;
}

/** The room's state, kept for as long as its shared client lives. */
export class RoomStore {
  private snap: RoomSnapshot = { campaign: null, presence: null, error: null };
  private readonly subs = new Set<() => void>();
  /** Closed with 4404: the campaign is not there for this viewer any more. */
  private gone = false;

  constructor(client: HeraldClient) {
    client.on('message', (m) => this.apply(m));
    client.on('close', (info) => {
      if (info.code === CloseCode.NotFound) this.leave();
    });
  }

  get snapshot(): RoomSnapshot {
    return this.snap;
  }

  subscribe = (fn: () => void): (() => void) => {
    this.subs.add(fn);
    return () => this.subs.delete(fn);
  };

  /**
   * Shows a campaign loaded through REST unless the socket already delivered
   * one, or said it is gone (a REST answer read before it was hidden).
   */
  seed(detail: CampaignDetail): void {
    if (!this.snap.campaign && !this.gone) this.apply({ type: 'campaign_data', data: detail });
  }

  /** The room was closed with 4404: what was shown goes (the error stays). */
  private leave(): void {
    this.gone = true;
    if (!this.snap.campaign) return;
    this.set({ ...this.snap, campaign: null });
  }

  /** Applies a message: from the socket, or an object the page just created through REST. */
  apply(m: ServerMessage): void {
    let next = this.snap;
    if (m.type === 'presence') next = { ...next, presence: m.data.count };
    else if (m.type === 'error') next = { ...next, error: m.data };
    else {
      const campaign = applyCampaignMessage(next.campaign, m);
      if (campaign !== next.campaign) next = { ...next, campaign, error: m.type === 'campaign_data' ? null : next.error };
      if (m.type === 'campaign_data') this.gone = false;
    }
    this.set(next);
  }

  private set(next: RoomSnapshot): void {
    if (next === this.snap) return;
    this.snap = next;
    for (const fn of this.subs) fn();
  }
}

export function roomURL(id: number | string): string {
  return `/ws/campaign/${id}/`;
}

/** The shared client and store of a campaign room (protocol v2). */
export function useRoom(id: number | string | null | undefined, listen?: (client: HeraldClient) => () => void) {
  return useHeraldClient(
    { url: roomURL(id ?? 0), version: 2, enabled: id != null && id !== '', setup: (c) => new RoomStore(c) },
    listen,
  );
}

const EMPTY: RoomSnapshot = { campaign: null, presence: null, error: null };
const noop = () => () => {};

export interface CampaignRoom extends RoomSnapshot {
  isConnected: boolean;
  state: ConnectionState;
  /** Shows an object the page created through REST at once (its event is then a no-op). */
  apply: (m: ServerMessage) => void;
  /** Shows a campaign loaded through REST until the socket's snapshot arrives. */
  seed: (detail: CampaignDetail) => void;
  /** Announces an object to the room, as the seeds' front end does (herald publishes each version once). */
  announce: (type: AnnounceType, id: number) => boolean;
  reconnect: () => void;
}

export interface CampaignRoomOptions {
  /** Called for every message of the room as it arrives (toasts, sounds). */
  onMessage?: (m: ServerMessage) => void;
}

/**
 * A campaign's live state from /ws/campaign/<id>/ (protocol v2): the
 * snapshot on connect, then each contribution, update, comment, release and
 * milestone applied as it comes, and each edit of the campaign itself (its
 * title, goal, status…). After a lost connection the client resumes from its
 * last position (the missed events are replayed), or, when the server's
 * history no longer reaches back, gets a fresh snapshot. A campaign made a
 * draft again closes the room for everyone but its owner, a deleted one for
 * everyone: campaign turns null, with error not_found.
 */
export function useCampaignRoom(id: number | string | null | undefined, options: CampaignRoomOptions = {}): CampaignRoom {
  const onMessage = useRef(options.onMessage);
  onMessage.current = options.onMessage;
  const attached = useRoom(id, (client) => client.on('message', (m) => onMessage.current?.(m)));
  const store = (attached?.extra as RoomStore | undefined) ?? null;
  const client = attached?.client ?? null;
  const snap = useSyncExternalStore(store ? store.subscribe : noop, () => store?.snapshot ?? EMPTY, () => EMPTY);
  const state = useConnectionState(client);
  const apply = useCallback((m: ServerMessage) => store?.apply(m), [store]);
  const seed = useCallback((d: CampaignDetail) => store?.seed(d), [store]);
  const announce = useCallback(
    (type: AnnounceType, objectId: number) =>
      ANNOUNCE_TYPES.includes(type) && (client?.send({ type, data: { id: objectId } }) ?? false),
    [client],
  );
  const reconnect = useCallback(() => client?.reconnect(), [client]);
  return { ...snap, isConnected: state === 'open', state, apply, seed, announce, reconnect };
}
