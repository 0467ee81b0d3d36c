-- +goose Up
-- An endpoint's destination type (webhook, or a message broker) and the type's settings: the
-- fields that are not credentials as a JSON object, the credentials as one sealed JSON object.
ALTER TABLE endpoints ADD COLUMN type TEXT NOT NULL DEFAULT 'webhook';
ALTER TABLE endpoints ADD COLUMN settings TEXT NOT NULL DEFAULT '';
ALTER TABLE endpoints ADD COLUMN settings_secrets TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE endpoints DROP COLUMN settings_secrets;
ALTER TABLE endpoints DROP COLUMN settings;
ALTER TABLE endpoints DROP COLUMN type;
