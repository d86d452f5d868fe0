import { useSyncExternalStore } from 'react';
import { useRoom, type RoomStore } from './useCampaignRoom';

const noop = () => () => {};

/**
 * How many are watching a campaign: the count of the room's latest
 * `presence` message (protocol v2; sent at most once a second, when it
 * changes), null until the first arrives. Shares the room's connection
 * with useCampaignRoom.
 */
export function usePresence(campaignId: number | string | null | undefined): number | null {
  const attached = useRoom(campaignId);
  const store = (attached?.extra as RoomStore | undefined) ?? null;
  return useSyncExternalStore(
    store ? store.subscribe : noop,
    () => store?.snapshot.presence ?? null,
    () => null,
  );
}
