-- Gallery additions: the MOST_VIEWED order of the showcase feed reads this index the way
-- NEWEST and MOST_LIKED read theirs.
CREATE INDEX characters_public_view_count_idx
    ON characters (view_count DESC, id DESC) WHERE is_public;
