// BIMserver's official JavaScript client (bimserverapi, from the npm registry) drives the
// emulator through the flows a BIMserver web application uses. Usage: node
// --experimental-detect-module flows.mjs BASE_URL USERNAME PASSWORD IFC_FILE. Prints one JSON
// object with what each flow saw; any failure exits non-zero with the reason.
import fs from "node:fs";
import path from "node:path";
import websocket from "websocket";
import XMLHttpRequest from "xhr2";

// The browser globals bimserverapi expects. xhr2 sends strings and buffers, not FormData:
// encode a FormData body the way a browser does (multipart, with its boundary).
const send = XMLHttpRequest.prototype.send;
XMLHttpRequest.prototype.send = function (body) {
  if (body instanceof FormData) {
    const encoded = new Response(body);
    encoded.arrayBuffer().then((buffer) => {
      this.setRequestHeader("Content-Type", encoded.headers.get("Content-Type"));
      send.call(this, Buffer.from(buffer));
    });
    return;
  }
  return send.call(this, body);
};
globalThis.XMLHttpRequest = XMLHttpRequest;
globalThis.WebSocket = websocket.w3cwebsocket;
// addExtendedData constructs a FileReader it uses only when `typeof data == "File"`, which no
// value ever is; Node has no FileReader, so an empty one stands in.
globalThis.FileReader = class FileReader {};

const { BimServerClient } = await import("bimserverapi/bimserverclient.js");

const [baseUrl, username, password, ifcFile] = process.argv.slice(2);
const fail = (step) => (error) => {
  console.error(JSON.stringify({ failed: step, error: error instanceof Error ? error.stack : error }));
  process.exit(1);
};
const call = (api, iface, method, params) =>
  new Promise((resolve, reject) => api.call(iface, method, params, resolve, reject));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const seen = {};
const api = new BimServerClient(baseUrl);
const serverInfo = await api.init().catch(fail("init"));
seen.serverState = serverInfo.serverState;
seen.version = serverInfo.version.major + "." + serverInfo.version.minor;

await new Promise((resolve, reject) => api.login(username, password, resolve, reject)).catch(
  fail("login"),
);
seen.user = api.user.username;
seen.endPointId = api.webSocket.endPointId;

const projects = await call(api, "ServiceInterface", "getAllProjects", {
  onlyTopLevel: true,
  onlyActive: true,
}).catch(fail("getAllProjects"));
const project = projects[0];
seen.projects = projects.map((p) => p.name);
const revision = await call(api, "ServiceInterface", "getRevision", {
  roid: project.lastRevisionId,
}).catch(fail("getRevision"));
seen.revisionComment = revision.comment;

// Check-in: deserializer, initiateCheckin, multipart /upload with the topic.
const deserializer = await call(api, "ServiceInterface", "getSuggestedDeserializerForExtension", {
  extension: "ifc",
  poid: project.oid,
}).catch(fail("getSuggestedDeserializerForExtension"));
const topicId = await new Promise((resolve, reject) =>
  api.initiateCheckin(project, deserializer.oid, resolve, reject),
).catch(fail("initiateCheckin"));
const file = new File([fs.readFileSync(ifcFile)], path.basename(ifcFile));
await new Promise((resolve, reject) =>
  api.checkin(topicId, project, "checked in by bimserverapi", file, deserializer.oid, () => {}, resolve, reject),
).catch(fail("checkin"));
const after = await call(api, "ServiceInterface", "getProjectByPoid", { poid: project.oid }).catch(
  fail("getProjectByPoid"),
);
const checkedIn = await call(api, "ServiceInterface", "getRevision", {
  roid: after.lastRevisionId,
}).catch(fail("getRevision"));
seen.checkedInComment = checkedIn.comment;
seen.revisionsAfterCheckin = after.revisions.length;

// Download with progress: serializer by plugin class, download, wait for the data, fetch.
const serializer = await api
  .getSerializerByPluginClassName("org.bimserver.ifc.step.serializer.Ifc2x3tc1StepStreamingSerializerPlugin")
  .catch(fail("getSerializerByPluginClassName"));
const downloadTopic = await call(api, "ServiceInterface", "download", {
  roids: [checkedIn.oid],
  query: JSON.stringify({ includeAllFields: true }),
  serializerOid: serializer.oid,
  sync: false,
}).catch(fail("download"));
const titles = [];
for (let i = 0; i < 50; i++) {
  const state = await call(api, "NotificationRegistryInterface", "getProgress", {
    topicId: downloadTopic,
  }).catch(fail("getProgress"));
  titles.push(state.title);
  if (state.title === "Done preparing" || state.state === "FINISHED") break;
  await sleep(50);
}
const response = await fetch(api.generateRevisionDownloadUrl({ topicId: downloadTopic }));
const bytes = Buffer.from(await response.arrayBuffer());
seen.downloadTitles = titles;
seen.downloadStartsWith = bytes.subarray(0, 13).toString();
seen.downloadDisposition = response.headers.get("content-disposition");
const finished = await call(api, "NotificationRegistryInterface", "getProgress", {
  topicId: downloadTopic,
}).catch(fail("getProgress"));
seen.downloadStateAfterFetch = finished.state;
await call(api, "ServiceInterface", "cleanupLongAction", { topicId: downloadTopic }).catch(
  fail("cleanupLongAction"),
);

// Extended data: the schema, the file through /upload, addExtendedDataToRevision.
const schema = await call(api, "ServiceInterface", "getExtendedDataSchemaByName", {
  name: "VALIDATION_JSON_1_0",
}).catch(fail("getExtendedDataSchemaByName"));
const report = new File([JSON.stringify({ items: [] })], "report.json", {
  type: "application/json",
});
await new Promise((resolve, reject) =>
  api.addExtendedData(checkedIn.oid, "A report", schema, report, resolve, reject),
).catch(fail("addExtendedData"));
const extended = await call(api, "ServiceInterface", "getAllExtendedDataOfRevision", {
  roid: checkedIn.oid,
}).catch(fail("getAllExtendedDataOfRevision"));
seen.extendedData = extended.map((e) => [e.title, e.schemaId === schema.oid]);

// Batches: each request answered in order; bimserverapi hands the failing ones to the error
// callback (bimserverclient.js multiCall).
const batch = (requests) =>
  new Promise((resolve) =>
    api.multiCall(requests, (r) => resolve({ ok: r }), (e) => resolve({ errors: e })),
  );
const answered = await batch([
  ["ServiceInterface", "getProjectByPoid", { poid: project.oid }],
  ["ServiceInterface", "getRevision", { roid: checkedIn.oid }],
]);
seen.batch = answered.ok.map((r) => r.result.__type);
const refused = await batch([
  ["ServiceInterface", "getProjectByPoid", { poid: project.oid }],
  ["ServiceInterface", "getRevision", { roid: 987654321 }],
]);
seen.batchErrors = refused.errors.map((e) => e.message);

console.log(JSON.stringify(seen));
process.exit(0);
