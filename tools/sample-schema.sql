-- Sample schema for the quickstart and the integration tests: runs once on a fresh database.
-- Quoted, mixed-case names on purpose: sharded must quote identifiers everywhere.

CREATE TABLE "User" (
  id         bigint PRIMARY KEY,
  email      text NOT NULL UNIQUE,
  name       text,
  active     boolean NOT NULL DEFAULT true,
  settings   jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE "Order" (
  id        bigint PRIMARY KEY,
  "userId"  bigint NOT NULL REFERENCES "User"(id),
  total     numeric(12,2) NOT NULL DEFAULT 0,
  items     jsonb,
  status    text NOT NULL DEFAULT 'new',
  placed_at timestamptz DEFAULT now()
);

CREATE TABLE "Event" (
  id          uuid PRIMARY KEY,
  "userId"    bigint REFERENCES "User"(id),
  kind        text NOT NULL,
  payload     json,
  happened_at timestamp NOT NULL
);

INSERT INTO "User" (id, email, name, active, settings, created_at) VALUES
  (1, 'ada@example.com',   'Ada Lovelace',  true,  '{"theme": "dark", "langs": ["en", "fr"]}', '2024-01-02 03:04:05+00'),
  (2, 'alan@example.com',  'Alan Turing',   true,  '{}',                                      '2024-02-03 04:05:06+00'),
  (3, 'grace@example.com', NULL,            false, '{"beta": true}',                          '2024-03-04 05:06:07+00');

INSERT INTO "Order" (id, "userId", total, items, status, placed_at) VALUES
  (10, 1, 42.50, '[{"sku": "book", "qty": 2, "price": 21.25}]',       'paid',    '2024-04-01 10:00:00+00'),
  (11, 1,  9.99, '[{"sku": "pen", "qty": 1, "options": {"ink": "blue"}}]', 'new', '2024-04-02 11:30:00+00'),
  (20, 2,  0,    NULL,                                                'new',     NULL);

INSERT INTO "Event" (id, "userId", kind, payload, happened_at) VALUES
  ('0b5e7c1a-3f4d-4a8e-9c2b-7d6e5f4a3b21', 1, 'login', '{"ip": "127.0.0.1", "ok": true}', '2024-04-01 09:59:00');
