import { useSyncExternalStore } from 'react';
import { useRoom, type RoomStore } from './useCampaignRoom';

const noop = () => () => {};

/**
 * How many are watching a campaign: the count of the room's `presence`
 * messages (protocol v2). herald does not send them yet, so this is null
 * until it does. Shares the room's connection with useCampaignRoom.
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
