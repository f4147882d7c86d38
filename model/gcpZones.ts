// Compute Engine regions and their zones, for validating gcp.region and gcp.zones before
// anything is created (a misspelt zone otherwise fails half-way through `pulumi up`).
// Taken 2026-11-27 from the "Available regions and zones" table of
// https://docs.cloud.google.com/compute/docs/regions-zones (public, standard zones only; AI
// zones and restricted regions left out); the region list agrees with `gcloud compute regions list`
// as of 2026-01. To update: `gcloud compute zones list --format='value(name)' | sort`, then
// edit the letters below (and the date above).
export const GCP_ZONES_TAKEN = "2026-11-27";

const LETTERS: Record<string, string> = {
  "africa-south1": "abc",
  "asia-east1": "abc",
  "asia-east2": "abc",
  "asia-northeast1": "abc",
  "asia-northeast2": "abc",
  "asia-northeast3": "abc",
  "asia-south1": "abc",
  "asia-south2": "abc",
  "asia-southeast1": "abc",
  "asia-southeast2": "abc",
  "asia-southeast3": "abc",
  "australia-southeast1": "abc",
  "australia-southeast2": "abc",
  "europe-central2": "abc",
  "europe-north1": "abc",
  "europe-north2": "abc",
  "europe-southwest1": "abc",
  "europe-west1": "bcd",
  "europe-west2": "abc",
  "europe-west3": "abc",
  "europe-west4": "abc",
  "europe-west6": "abc",
  "europe-west8": "abc",
  "europe-west9": "abc",
  "europe-west10": "abc",
  "europe-west12": "abc",
  "me-central1": "abc",
  "me-central2": "abc",
  "me-west1": "abc",
  "northamerica-northeast1": "abc",
  "northamerica-northeast2": "abc",
  "northamerica-south1": "abc",
  "southamerica-east1": "abc",
  "southamerica-west1": "abc",
  "us-central1": "abcf",
  "us-east1": "bcd",
  "us-east4": "abc",
  "us-east5": "abc",
  "us-south1": "abc",
  "us-west1": "abc",
  "us-west2": "abc",
  "us-west3": "abc",
  "us-west4": "abc",
};

/** Region -> its zones, e.g. "europe-west1" -> ["europe-west1-b", "europe-west1-c", "europe-west1-d"]. */
export const GCP_ZONES: Readonly<Record<string, readonly string[]>> = Object.fromEntries(
  Object.entries(LETTERS).map(([region, letters]) => [region, [...letters].map((l) => `${region}-${l}`)]),
);

export const GCP_REGIONS: readonly string[] = Object.keys(GCP_ZONES);
