-- Gallery: images (files live in object storage), characters (seed 003) with their images,
-- likes and ratings, collections of characters, and vendor albums of images.
-- images.job_id gets its foreign key in the `generation` migration.

CREATE TABLE images (
    id            uuid PRIMARY KEY,
    owner_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    job_id        uuid,
    kind          text NOT NULL,
    storage_key   text NOT NULL,
    mime_type     text NOT NULL,
    byte_size     bigint NOT NULL,
    width         integer,
    height        integer,
    thumbnail_key text,
    is_public     boolean NOT NULL DEFAULT false,
    tags          text[] NOT NULL DEFAULT '{}',
    metadata      jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT images_kind_check CHECK (kind IN ('upload', 'result', 'vendor')),
    CONSTRAINT images_byte_size_check CHECK (byte_size >= 0),
    CONSTRAINT images_dimensions_check CHECK (width > 0 AND height > 0),
    CONSTRAINT images_tags_check CHECK (array_position(tags, NULL) IS NULL),
    CONSTRAINT images_storage_key_key UNIQUE (storage_key)
);
CREATE INDEX images_owner_id_created_at_idx ON images (owner_id, created_at DESC, id DESC);
CREATE INDEX images_public_created_at_idx ON images (created_at DESC, id DESC) WHERE is_public;
CREATE INDEX images_job_id_idx ON images (job_id) WHERE job_id IS NOT NULL;
CREATE INDEX images_tags_idx ON images USING gin (tags);
SELECT easel_manage_updated_at('images');

CREATE TABLE characters (
    id                   uuid PRIMARY KEY,
    owner_id             uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name                 text NOT NULL,
    description          text,
    prompt               text NOT NULL,
    negative_prompt      text,
    style_type           text NOT NULL,
    art_style            text,
    mood                 text,
    color_palette        text[] NOT NULL DEFAULT '{}',
    model_version        text NOT NULL DEFAULT 'v1.0',
    seed                 bigint,
    cfg_scale            numeric(3, 1) NOT NULL DEFAULT 7.5,
    steps                integer NOT NULL DEFAULT 20,
    sampler              text NOT NULL DEFAULT 'DPM++ 2M Karras',
    primary_image_id     uuid REFERENCES images (id) ON DELETE SET NULL,
    status               text NOT NULL DEFAULT 'pending',
    error_message        text,
    tags                 text[] NOT NULL DEFAULT '{}',
    is_public            boolean NOT NULL DEFAULT false,
    is_featured          boolean NOT NULL DEFAULT false,
    allow_commercial_use boolean NOT NULL DEFAULT false,
    license_type         text NOT NULL DEFAULT 'standard',
    view_count           bigint NOT NULL DEFAULT 0,
    like_count           bigint NOT NULL DEFAULT 0,
    download_count       bigint NOT NULL DEFAULT 0,
    share_count          bigint NOT NULL DEFAULT 0,
    parent_character_id  uuid REFERENCES characters (id) ON DELETE SET NULL,
    version_number       integer NOT NULL DEFAULT 1,
    variant_type         text,
    published_at         timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT characters_name_check CHECK (char_length(name) BETWEEN 1 AND 200),
    CONSTRAINT characters_style_type_check CHECK (style_type IN
        ('anime', 'realistic', 'cartoon', 'fantasy', 'cyberpunk',
         'steampunk', 'minimalist', 'comic', 'portrait', 'artistic')),
    CONSTRAINT characters_color_palette_check CHECK (array_position(color_palette, NULL) IS NULL),
    CONSTRAINT characters_cfg_scale_check CHECK (cfg_scale BETWEEN 1.0 AND 30.0),
    CONSTRAINT characters_steps_check CHECK (steps BETWEEN 1 AND 150),
    CONSTRAINT characters_status_check CHECK (status IN
        ('pending', 'processing', 'completed', 'failed', 'cancelled')),
    CONSTRAINT characters_tags_check CHECK (array_position(tags, NULL) IS NULL),
    CONSTRAINT characters_license_type_check
        CHECK (license_type IN ('standard', 'commercial', 'creative_commons')),
    CONSTRAINT characters_counts_check CHECK (
        view_count >= 0 AND like_count >= 0 AND download_count >= 0 AND share_count >= 0),
    CONSTRAINT characters_version_number_check CHECK (version_number >= 1),
    CONSTRAINT characters_variant_type_check CHECK (variant_type IN
        ('original', 'style_transfer', 'pose_change', 'outfit_change', 'expression_change')),
    CONSTRAINT characters_parent_character_id_check CHECK (parent_character_id <> id)
);
CREATE INDEX characters_owner_id_created_at_idx
    ON characters (owner_id, created_at DESC, id DESC);
CREATE INDEX characters_public_created_at_idx
    ON characters (created_at DESC, id DESC) WHERE is_public;
CREATE INDEX characters_public_style_type_created_at_idx
    ON characters (style_type, created_at DESC, id DESC) WHERE is_public;
CREATE INDEX characters_public_like_count_idx
    ON characters (like_count DESC, id DESC) WHERE is_public;
CREATE INDEX characters_featured_created_at_idx
    ON characters (created_at DESC, id DESC) WHERE is_featured;
CREATE INDEX characters_tags_idx ON characters USING gin (tags);
CREATE INDEX characters_primary_image_id_idx ON characters (primary_image_id)
    WHERE primary_image_id IS NOT NULL;
CREATE INDEX characters_parent_character_id_idx ON characters (parent_character_id)
    WHERE parent_character_id IS NOT NULL;
SELECT easel_manage_updated_at('characters');

CREATE TABLE character_images (
    character_id uuid NOT NULL REFERENCES characters (id) ON DELETE CASCADE,
    image_id     uuid NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    position     integer NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT character_images_pkey PRIMARY KEY (character_id, image_id),
    CONSTRAINT character_images_position_check CHECK (position >= 0)
);
CREATE INDEX character_images_character_id_position_idx
    ON character_images (character_id, position);
CREATE INDEX character_images_image_id_idx ON character_images (image_id);

CREATE TABLE character_likes (
    character_id uuid NOT NULL REFERENCES characters (id) ON DELETE CASCADE,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT character_likes_pkey PRIMARY KEY (character_id, user_id)
);
CREATE INDEX character_likes_user_id_created_at_idx
    ON character_likes (user_id, created_at DESC, character_id DESC);

CREATE TABLE character_ratings (
    id           uuid PRIMARY KEY,
    character_id uuid NOT NULL REFERENCES characters (id) ON DELETE CASCADE,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    rating       integer NOT NULL,
    review_text  text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT character_ratings_rating_check CHECK (rating BETWEEN 1 AND 5),
    CONSTRAINT character_ratings_character_id_user_id_key UNIQUE (character_id, user_id)
);
CREATE INDEX character_ratings_character_id_created_at_idx
    ON character_ratings (character_id, created_at DESC, id DESC);
CREATE INDEX character_ratings_user_id_idx ON character_ratings (user_id);
SELECT easel_manage_updated_at('character_ratings');

CREATE TABLE collections (
    id              uuid PRIMARY KEY,
    owner_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name            text NOT NULL,
    description     text,
    cover_image_id  uuid REFERENCES images (id) ON DELETE SET NULL,
    tags            text[] NOT NULL DEFAULT '{}',
    is_public       boolean NOT NULL DEFAULT false,
    character_count integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT collections_name_check CHECK (char_length(name) BETWEEN 1 AND 200),
    CONSTRAINT collections_tags_check CHECK (array_position(tags, NULL) IS NULL),
    CONSTRAINT collections_character_count_check CHECK (character_count >= 0)
);
CREATE INDEX collections_owner_id_created_at_idx
    ON collections (owner_id, created_at DESC, id DESC);
CREATE INDEX collections_public_created_at_idx
    ON collections (created_at DESC, id DESC) WHERE is_public;
CREATE INDEX collections_cover_image_id_idx ON collections (cover_image_id)
    WHERE cover_image_id IS NOT NULL;
SELECT easel_manage_updated_at('collections');

CREATE TABLE collection_characters (
    collection_id uuid NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    character_id  uuid NOT NULL REFERENCES characters (id) ON DELETE CASCADE,
    position      integer NOT NULL DEFAULT 0,
    added_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT collection_characters_pkey PRIMARY KEY (collection_id, character_id),
    CONSTRAINT collection_characters_position_check CHECK (position >= 0)
);
CREATE INDEX collection_characters_collection_id_position_idx
    ON collection_characters (collection_id, position);
CREATE INDEX collection_characters_character_id_idx ON collection_characters (character_id);

CREATE TABLE albums (
    id             uuid PRIMARY KEY,
    owner_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name           text NOT NULL,
    description    text,
    cover_image_id uuid REFERENCES images (id) ON DELETE SET NULL,
    is_public      boolean NOT NULL DEFAULT false,
    image_count    integer NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT albums_name_check CHECK (char_length(name) BETWEEN 1 AND 200),
    CONSTRAINT albums_image_count_check CHECK (image_count >= 0)
);
CREATE INDEX albums_owner_id_created_at_idx ON albums (owner_id, created_at DESC, id DESC);
CREATE INDEX albums_public_created_at_idx ON albums (created_at DESC, id DESC) WHERE is_public;
CREATE INDEX albums_cover_image_id_idx ON albums (cover_image_id)
    WHERE cover_image_id IS NOT NULL;
SELECT easel_manage_updated_at('albums');

CREATE TABLE album_images (
    album_id uuid NOT NULL REFERENCES albums (id) ON DELETE CASCADE,
    image_id uuid NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    position integer NOT NULL DEFAULT 0,
    added_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT album_images_pkey PRIMARY KEY (album_id, image_id),
    CONSTRAINT album_images_position_check CHECK (position >= 0)
);
CREATE INDEX album_images_album_id_position_idx ON album_images (album_id, position);
CREATE INDEX album_images_image_id_idx ON album_images (image_id);
