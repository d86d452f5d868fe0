// React hooks for herald, with the seeds' shapes.
export { HeraldProvider, useHeraldConfig, type HeraldConfig } from './config';
export { useWebSocket, type UseWebSocketOptions, type UseWebSocketResult } from './useWebSocket';
export { useApplicationWebSocket, type ApplicationSocketOptions } from './useApplicationWebSocket';
export { useCampaignRoom, type CampaignRoom, type CampaignRoomOptions, type RoomSnapshot } from './useCampaignRoom';
export { usePresence } from './usePresence';
export { useGroup, type GroupState, type UseGroupOptions } from './useGroup';
export { useHeraldClient, useConnectionState } from './useHeraldClient';
export { applyCampaignMessage } from './campaignState';
