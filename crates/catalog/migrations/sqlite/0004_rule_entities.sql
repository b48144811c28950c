-- Lifeboat catalog, schema version 4: what each activation rule activated.
--
-- A recurring rule re-evaluated daily must know which entities it brought
-- in, so that one leaving the rule's scope (a user leaving a group) is kept,
-- paused or deleted per the rule's deactivation setting, while entities an
-- administrator activated by hand are never touched. Identical in both
-- dialects.

CREATE TABLE rule_entities (
    account_id  TEXT NOT NULL,
    rule_id     TEXT NOT NULL,
    entity_id   TEXT NOT NULL,
    matched_at  BIGINT NOT NULL,
    PRIMARY KEY (account_id, rule_id, entity_id),
    FOREIGN KEY (account_id, rule_id) REFERENCES activation_rules (account_id, id) ON DELETE CASCADE,
    FOREIGN KEY (account_id, entity_id) REFERENCES entities (account_id, id) ON DELETE CASCADE
);

CREATE INDEX rule_entities_entity ON rule_entities (account_id, entity_id);
