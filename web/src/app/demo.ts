// What herald's demo data (internal/demo, loaded into an empty database)
// gives each demo account, for the sign-in page: who owns which campaign and
// quest, and who applied where. test/unit/demo-accounts.test.ts compares it
// with what a fresh herald really serves, so the two cannot drift apart.

import type { ApplicationStatus, CampaignStatus } from '@herald/client';

export const DEMO_PASSWORD = 'herald-demo';

export interface DemoAccount {
  username: string;
  /** The campaigns they own. */
  campaigns: { title: string; status: CampaignStatus }[];
  /** The quests they created: their applications are under "Manage applications". */
  quests: string[];
  /** Their own applications, under "My applications". */
  applications: { quest: string; status: ApplicationStatus }[];
}

export const DEMO_ACCOUNTS: DemoAccount[] = [
  {
    username: 'alice',
    campaigns: [
      { title: 'Solar kiosk for the village library', status: 'active' },
      { title: 'Open-source field notebook app', status: 'active' },
      { title: 'Community garden tool shed', status: 'draft' },
    ],
    quests: [],
    applications: [
      { quest: 'Translate the library catalogue', status: 'approved' },
      { quest: 'Photograph the harbour wall', status: 'withdrawn' },
    ],
  },
  {
    username: 'bob',
    campaigns: [{ title: 'Harbour mural', status: 'active' }],
    quests: ['Translate the library catalogue', 'Photograph the harbour wall'],
    applications: [],
  },
  {
    username: 'carol',
    campaigns: [],
    quests: ['Test the notebook beta'],
    applications: [{ quest: 'Translate the library catalogue', status: 'pending' }],
  },
  {
    username: 'dave',
    campaigns: [],
    quests: [],
    applications: [
      { quest: 'Translate the library catalogue', status: 'rejected' },
      { quest: 'Test the notebook beta', status: 'pending' },
    ],
  },
];
