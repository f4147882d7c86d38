// Pulumi entry point (Pulumi.yaml: main: infra/).
import { deploy } from "./program";

const out = deploy();
export const DATABASE_URL_PRIMARY = out.DATABASE_URL_PRIMARY;
export const DATABASE_URL_REPLICA = out.DATABASE_URL_REPLICA;
export const DATABASE_URL_PRIMARY_DIRECT = out.DATABASE_URL_PRIMARY_DIRECT;
export const haproxyStats = out.haproxyStats;
export const caCert = out.caCert;
export const nodes = out.nodes;
export const steps = out.steps;
