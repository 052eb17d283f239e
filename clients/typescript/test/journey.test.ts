// A whole journey through the generated client against a running server (HEREABOUTS_BASE_URL):
// two people sign up, connect, opt in, check in near each other, see each other nearby and on
// the live radar, plan a trip that overlaps, export their data, and one erases the account.
import assert from "node:assert/strict";
import { test } from "node:test";
import { createHereaboutsClient, readEvents, type Schemas } from "../src/index.js";

const baseUrl = process.env.HEREABOUTS_BASE_URL;
if (!baseUrl) throw new Error("set HEREABOUTS_BASE_URL (scripts/client-test does)");

interface Person {
  name: string;
  email: string;
  token?: string;
  user?: Schemas["User"];
  api: ReturnType<typeof createHereaboutsClient>;
}

function person(name: string): Person {
  const p: Person = {
    name,
    email: `${name.toLowerCase()}-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`,
    api: undefined as never,
  };
  p.api = createHereaboutsClient({ baseUrl: baseUrl!, token: () => p.token });
  return p;
}

const day = (offset: number) => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);

test("a journey through the API with the generated client", async (t) => {
  const ada = person("Ada");
  const bob = person("Bob");

  await t.test("register", async () => {
    for (const p of [ada, bob]) {
      const { data, error, response } = await p.api.POST("/v1/auth/register", {
        body: { email: p.email, password: "correct horse battery", display_name: p.name },
      });
      assert.equal(response.status, 201, JSON.stringify(error));
      assert.ok(data);
      assert.equal(data.token_type, "Bearer");
      p.token = data.access_token;
      p.user = data.user;
    }
  });

  await t.test("a bad value is a problem naming the field", async () => {
    const { error, response } = await ada.api.GET("/v1/nearby", { params: { query: { radius_m: 10 } } });
    assert.equal(response.status, 422);
    assert.equal(response.headers.get("content-type"), "application/problem+json");
    assert.equal(error?.code, "validation_failed");
    assert.deepEqual(
      error?.errors?.map((e) => e.field),
      ["radius_m"],
    );
  });

  await t.test("connect", async () => {
    const asked = await ada.api.POST("/v1/connections/requests", { body: { email: bob.email } });
    assert.equal(asked.response.status, 201, JSON.stringify(asked.error));
    const incoming = await bob.api.GET("/v1/connections/requests", { params: { query: { direction: "incoming" } } });
    const request = incoming.data?.items.find((r) => r.from_user_id === ada.user?.id);
    assert.ok(request, "Bob sees Ada's request");
    const accepted = await bob.api.POST("/v1/connections/requests/{id}/accept", {
      params: { path: { id: request.id } },
    });
    assert.equal(accepted.response.status, 200, JSON.stringify(accepted.error));
    const list = await ada.api.GET("/v1/connections");
    assert.deepEqual(
      list.data?.items.map((c) => c.user_id),
      [bob.user?.id],
    );
  });

  await t.test("opt in and check in", async () => {
    for (const [p, lng] of [
      [ada, 2.3522],
      [bob, 2.3622],
    ] as const) {
      const privacy = await p.api.PATCH("/v1/me/privacy", { body: { sharing: true, precision: "exact" } });
      assert.equal(privacy.data?.sharing, true, JSON.stringify(privacy.error));
      const checkin = await p.api.POST("/v1/checkins", { body: { lat: 48.8566, lng } });
      assert.equal(checkin.response.status, 201, JSON.stringify(checkin.error));
      assert.equal(checkin.data?.indexed, true);
    }
  });

  await t.test("nearby", async () => {
    const { data, error } = await ada.api.GET("/v1/nearby", { params: { query: { radius_m: 5000 } } });
    assert.ok(data, JSON.stringify(error));
    assert.equal(data.items.length, 1);
    const bobNear = data.items[0]!;
    assert.equal(bobNear.user_id, bob.user?.id);
    assert.equal(bobNear.display_name, "Bob");
    // 0.01° of longitude at 48.86° N is about 733 m, rounded to 10 m for exact sharing
    assert.ok(bobNear.distance_m > 700 && bobNear.distance_m < 770, `${bobNear.distance_m}`);
  });

  await t.test("the live radar starts with a snapshot", async () => {
    const abort = new AbortController();
    const { response } = await ada.api.GET("/v1/nearby/stream", {
      params: { query: { radius_m: 5000 } },
      headers: { Accept: "text/event-stream" },
      parseAs: "stream",
      signal: abort.signal,
    });
    assert.equal(response.status, 200);
    assert.ok(response.body);
    for await (const event of readEvents(response.body)) {
      assert.equal(event.event, "snapshot");
      const snapshot = JSON.parse(event.data) as Schemas["NearbyResponse"];
      assert.deepEqual(
        snapshot.items.map((i) => i.user_id),
        [bob.user?.id],
      );
      break;
    }
    abort.abort();
  });

  await t.test("a trip that overlaps a connection's", async () => {
    const mine = await ada.api.POST("/v1/trips", {
      body: { name: "Lisbon", lat: 38.7223, lng: -9.1393, starts_on: day(10), ends_on: day(14) },
    });
    assert.equal(mine.response.status, 201, JSON.stringify(mine.error));
    const theirs = await bob.api.POST("/v1/trips", {
      body: { lat: 38.7169, lng: -9.139, starts_on: day(12), ends_on: day(16) },
    });
    assert.equal(theirs.response.status, 201, JSON.stringify(theirs.error));
    const overlaps = await ada.api.GET("/v1/trips/{id}/overlaps", { params: { path: { id: mine.data!.id } } });
    assert.ok(overlaps.data, JSON.stringify(overlaps.error));
    const o = overlaps.data.items.find((i) => i.user_id === bob.user?.id);
    assert.ok(o, "Ada sees Bob's overlapping trip");
    assert.equal(o.kind, "trip");
    assert.equal(o.overlap_from, day(12));
    assert.equal(o.overlap_to, day(14));
  });

  await t.test("export", async () => {
    const { data, response } = await ada.api.GET("/v1/me/export");
    assert.equal(response.status, 200);
    const text = JSON.stringify(data);
    assert.ok(text.includes(ada.email), "the export holds the profile");
    assert.ok(text.includes(bob.user!.id), "and the connection");
  });

  await t.test("erase", async () => {
    const erased = await ada.api.DELETE("/v1/me");
    assert.equal(erased.response.status, 204);
    const after = await ada.api.GET("/v1/me");
    assert.equal(after.response.status, 401);
    assert.equal(after.error?.code, "unauthorized");
    const bobs = await bob.api.GET("/v1/connections");
    assert.deepEqual(bobs.data?.items, [], "Bob's connection to Ada is gone");
    const login = await ada.api.POST("/v1/auth/login", {
      body: { email: ada.email, password: "correct horse battery" },
    });
    assert.equal(login.response.status, 401);
  });
});
