-- view stg_algolia__users
CREATE OR REPLACE VIEW algolia.stg_algolia__users AS
SELECT
  u.user_id,
  u.type,
  u.last_updated_at,
  u.affinity_count
FROM algolia.users AS u
WHERE
  u.deleted_at IS NULL;

-- view stg_algolia__user_affinities
CREATE OR REPLACE VIEW algolia.stg_algolia__user_affinities AS
SELECT
  a.user_id,
  a.name,
  a.value,
  a.score,
  a.indices,
  a.last_updated_at
FROM algolia.user_affinities AS a
WHERE
  NOT EXISTS(
    SELECT
      1
    FROM algolia.users AS u
    WHERE
      u.user_id = a.user_id AND NOT u.deleted_at IS NULL
  );

-- view stg_algolia__personalization_config
CREATE OR REPLACE VIEW algolia.stg_algolia__personalization_config AS
SELECT
  c.index AS index_name,
  c.affinities,
  c.status,
  c.last_updated_at
FROM algolia.personalization_config AS c;

-- drop affinity_index_coverage
DROP TABLE IF EXISTS algolia.affinity_index_coverage;

-- table affinity_index_coverage
CREATE TABLE algolia.affinity_index_coverage AS
SELECT
  a.name,
  a.value,
  c.index_name,
  CAST(SUM(a.users) AS BIGINT) AS users
FROM (
  SELECT
    s.name,
    s.value,
    s.indices,
    COUNT(*) AS users
  FROM algolia.stg_algolia__user_affinities AS s
  GROUP BY
    s.name,
    s.value,
    s.indices
) AS a
JOIN algolia.stg_algolia__personalization_config AS c
  ON JSON_CONTAINS(a.indices, TO_JSON(c.index_name))
GROUP BY
  a.name,
  a.value,
  c.index_name;

-- drop affinity_catalog
DROP TABLE IF EXISTS algolia.affinity_catalog;

-- table affinity_catalog
CREATE TABLE algolia.affinity_catalog AS
SELECT
  s.name,
  s.value,
  s.users,
  s.share_of_users,
  s.score_min,
  s.score_avg,
  s.score_p50,
  s.score_p90,
  s.score_max,
  s.last_updated_at,
  cov.index_count
FROM (
  SELECT
    a.name,
    a.value,
    COUNT(*) AS users,
    CAST(COUNT(*) AS DOUBLE) / NULLIF((
      SELECT
        COUNT(*)
      FROM algolia.stg_algolia__users
    ), 0) AS share_of_users,
    MIN(a.score) AS score_min,
    AVG(a.score) AS score_avg,
    QUANTILE_CONT(a.score, 0.5) AS score_p50,
    QUANTILE_CONT(a.score, 0.9) AS score_p90,
    MAX(a.score) AS score_max,
    MAX(a.last_updated_at) AS last_updated_at
  FROM algolia.stg_algolia__user_affinities AS a
  GROUP BY
    a.name,
    a.value
) AS s
LEFT JOIN (
  SELECT
    k.name,
    k.value,
    COUNT(*) AS index_count
  FROM algolia.affinity_index_coverage AS k
  GROUP BY
    k.name,
    k.value
) AS cov
  ON cov.name = s.name AND cov.value = s.value;

-- view user_top_affinities
CREATE OR REPLACE VIEW algolia.user_top_affinities AS
SELECT
  r.user_id,
  r.name,
  r.value,
  r.score,
  r.affinity_rank
FROM (
  SELECT
    a.user_id,
    a.name,
    a.value,
    a.score,
    ROW_NUMBER() OVER (PARTITION BY a.user_id, a.name ORDER BY a.score DESC, a.value NULLS FIRST) AS affinity_rank
  FROM algolia.stg_algolia__user_affinities AS a
) AS r
WHERE
  r.affinity_rank <= 3;

-- create segment_members if missing
CREATE TABLE IF NOT EXISTS algolia.segment_members (
  segment TEXT,
  user_id TEXT,
  score DOUBLE,
  matched_affinities BIGINT,
  built_at TIMESTAMPTZ
);

-- create segment_membership_events if missing
CREATE TABLE IF NOT EXISTS algolia.segment_membership_events (
  segment TEXT,
  user_id TEXT,
  event TEXT,
  build_id TEXT,
  built_at TIMESTAMPTZ
);

-- create segment_builds if missing
CREATE TABLE IF NOT EXISTS algolia.segment_builds (
  build_id TEXT,
  segment TEXT,
  members BIGINT,
  entered BIGINT,
  exited BIGINT,
  built_at TIMESTAMPTZ
);

-- drop segment_members__next
DROP TABLE IF EXISTS algolia.segment_members__next;

-- create segment_members__next if missing
CREATE TABLE IF NOT EXISTS algolia.segment_members__next (
  segment TEXT,
  user_id TEXT,
  score DOUBLE,
  matched_affinities BIGINT,
  built_at TIMESTAMPTZ
);

-- drop segment_user_flags__work
DROP TABLE IF EXISTS segment_user_flags__work;

-- table segment_user_flags__work
CREATE TEMPORARY TABLE segment_user_flags__work AS
SELECT
  u.user_id,
  u.type,
  u.last_updated_at,
  g.mask_0,
  g.score_0,
  g.matched_0,
  g.score_1,
  g.matched_1,
  g.score_3,
  g.matched_3,
  g.score_4,
  g.matched_4,
  g.score_5,
  g.matched_5,
  g.score_6,
  g.matched_6,
  g.score_8,
  g.matched_8,
  g.score_9,
  g.matched_9
FROM (
  SELECT
    c.user_id,
    BIT_OR(c.mask_0) AS mask_0,
    MAX(CASE WHEN (
      c.mask_0 & 1
    ) <> 0 THEN c.score END) AS score_0,
    SUM(CASE WHEN (
      c.mask_0 & 1
    ) <> 0 THEN 1 ELSE 0 END) AS matched_0,
    MAX(CASE WHEN (
      c.mask_0 & 6
    ) <> 0 THEN c.score END) AS score_1,
    SUM(CASE WHEN (
      c.mask_0 & 6
    ) <> 0 THEN 1 ELSE 0 END) AS matched_1,
    MAX(CASE WHEN (
      c.mask_0 & 16
    ) <> 0 THEN c.score END) AS score_3,
    SUM(CASE WHEN (
      c.mask_0 & 16
    ) <> 0 THEN 1 ELSE 0 END) AS matched_3,
    MAX(CASE WHEN (
      c.mask_0 & 32
    ) <> 0 THEN c.score END) AS score_4,
    SUM(CASE WHEN (
      c.mask_0 & 32
    ) <> 0 THEN 1 ELSE 0 END) AS matched_4,
    MAX(CASE WHEN (
      c.mask_0 & 64
    ) <> 0 THEN c.score END) AS score_5,
    SUM(CASE WHEN (
      c.mask_0 & 64
    ) <> 0 THEN 1 ELSE 0 END) AS matched_5,
    MAX(CASE WHEN (
      c.mask_0 & 128
    ) <> 0 THEN c.score END) AS score_6,
    SUM(CASE WHEN (
      c.mask_0 & 128
    ) <> 0 THEN 1 ELSE 0 END) AS matched_6,
    MAX(CASE WHEN (
      c.mask_0 & 3840
    ) <> 0 THEN c.score END) AS score_8,
    SUM(CASE WHEN (
      c.mask_0 & 3840
    ) <> 0 THEN 1 ELSE 0 END) AS matched_8,
    MAX(CASE WHEN (
      c.mask_0 & 4096
    ) <> 0 THEN c.score END) AS score_9,
    SUM(CASE WHEN (
      c.mask_0 & 4096
    ) <> 0 THEN 1 ELSE 0 END) AS matched_9
  FROM (
    SELECT
      a.user_id,
      a.score,
      CAST(CASE
        WHEN a.name = 'category' AND a.value = 'Camping' AND a.score >= 12.0
        THEN 1
        ELSE 0
      END + CASE
        WHEN a.name = 'categories.lvl0'
        AND a.value IN ('Kids', 'Baby', 'Toys')
        AND a.score >= 5.0
        THEN 2
        ELSE 0
      END + CASE
        WHEN a.name = 'category' AND a.value IN ('Toys', 'Baby', 'Kids'' Clothing')
        THEN 4
        ELSE 0
      END + CASE WHEN a.name = 'brand' AND a.value IN ('LEGO', 'Fisher-Price') THEN 8 ELSE 0 END + CASE
        WHEN a.name = 'categories.lvl1'
        AND a.value IN (
          'Outdoor > Camping',
          'Outdoor > Hiking',
          'Outdoor > Camping > Tents, Tarps & Shelters'
        )
        AND a.score > 3.0
        AND a.score < 19.0
        AND JSON_CONTAINS(a.indices, TO_JSON('products_fr_FR'))
        AND a.last_updated_at >= CAST('2026-10-14T00:00:00+00:00' AS TIMESTAMPTZ)
        THEN 16
        ELSE 0
      END + CASE
        WHEN a.name = 'category'
        AND a.value IN ('Running', 'Running Shoes')
        AND a.score >= 8.0
        AND a.score <= 15.5
        THEN 32
        ELSE 0
      END + CASE WHEN a.name = 'brand' THEN 64 ELSE 0 END + CASE WHEN a.name = 'price_range' AND a.value = '500+' THEN 128 ELSE 0 END + CASE
        WHEN a.name = 'collection'
        AND a.value IN ('户外', 'Кемпинг', 'Été: randonnée', 'Soldes: -50%', 'العربية')
        THEN 256
        ELSE 0
      END + CASE WHEN a.name = 'brand' AND a.value = '"Pro" Series' THEN 512 ELSE 0 END + CASE
        WHEN a.name = 'categories.lvl1' AND a.value = 'Toys > Star Wars: The Mandalorian'
        THEN 1024
        ELSE 0
      END + CASE
        WHEN a.name = 'brand' AND a.value = 'O''Brien''; drop table users; --'
        THEN 2048
        ELSE 0
      END + CASE WHEN a.name = 'color' THEN 4096 ELSE 0 END AS BIGINT) AS mask_0
    FROM algolia.user_affinities AS a
    WHERE
      EXISTS(
        SELECT
          1
        FROM (
          SELECT
            'brand' AS name,
            '"Pro" Series' AS value
          UNION ALL
          SELECT
            'brand' AS name,
            'Fisher-Price' AS value
          UNION ALL
          SELECT
            'brand' AS name,
            'LEGO' AS value
          UNION ALL
          SELECT
            'brand' AS name,
            'O''Brien''; drop table users; --' AS value
          UNION ALL
          SELECT
            'categories.lvl0' AS name,
            'Baby' AS value
          UNION ALL
          SELECT
            'categories.lvl0' AS name,
            'Kids' AS value
          UNION ALL
          SELECT
            'categories.lvl0' AS name,
            'Toys' AS value
          UNION ALL
          SELECT
            'categories.lvl1' AS name,
            'Outdoor > Camping' AS value
          UNION ALL
          SELECT
            'categories.lvl1' AS name,
            'Outdoor > Camping > Tents, Tarps & Shelters' AS value
          UNION ALL
          SELECT
            'categories.lvl1' AS name,
            'Outdoor > Hiking' AS value
          UNION ALL
          SELECT
            'categories.lvl1' AS name,
            'Toys > Star Wars: The Mandalorian' AS value
          UNION ALL
          SELECT
            'category' AS name,
            'Baby' AS value
          UNION ALL
          SELECT
            'category' AS name,
            'Camping' AS value
          UNION ALL
          SELECT
            'category' AS name,
            'Kids'' Clothing' AS value
          UNION ALL
          SELECT
            'category' AS name,
            'Running' AS value
          UNION ALL
          SELECT
            'category' AS name,
            'Running Shoes' AS value
          UNION ALL
          SELECT
            'category' AS name,
            'Toys' AS value
          UNION ALL
          SELECT
            'collection' AS name,
            'Soldes: -50%' AS value
          UNION ALL
          SELECT
            'collection' AS name,
            'Été: randonnée' AS value
          UNION ALL
          SELECT
            'collection' AS name,
            'Кемпинг' AS value
          UNION ALL
          SELECT
            'collection' AS name,
            'العربية' AS value
          UNION ALL
          SELECT
            'collection' AS name,
            '户外' AS value
          UNION ALL
          SELECT
            'price_range' AS name,
            '500+' AS value
        ) AS p
        WHERE
          p.name = a.name AND p.value = a.value
      )
      OR a.name IN ('brand', 'color')
  ) AS c
  GROUP BY
    c.user_id
) AS g
JOIN algolia.stg_algolia__users AS u
  ON u.user_id = g.user_id;

-- audience campers
INSERT INTO algolia.segment_members__next (
  segment,
  user_id,
  score,
  matched_affinities,
  built_at
)
WITH r AS (
  SELECT
    u.user_id,
    u.score_0 AS score,
    CAST(COALESCE(u.matched_0, 0) AS BIGINT) AS matched_affinities
  FROM segment_user_flags__work AS u
  WHERE
    (
      COALESCE(u.mask_0, 0) & 1
    ) <> 0
    AND NOT u.user_id IN ('SUPPRESSED-PLACEHOLDER')
    AND NOT EXISTS(
      SELECT
        1
      FROM algolia.crm_opted_out AS s
      WHERE
        CAST(s.user_token AS TEXT) = u.user_id
    )
)
SELECT
  'campers' AS segment,
  x.user_id,
  x.score,
  x.matched_affinities,
  CAST('2026-11-28T06:00:00+00:00' AS TIMESTAMPTZ) AS built_at
FROM (
  SELECT
    r.user_id,
    r.score,
    r.matched_affinities
  FROM r
) AS x;

-- audience kids
INSERT INTO algolia.segment_members__next (
  segment,
  user_id,
  score,
  matched_affinities,
  built_at
)
WITH r AS (
  SELECT
    u.user_id,
    u.score_1 AS score,
    CAST(COALESCE(u.matched_1, 0) AS BIGINT) AS matched_affinities
  FROM segment_user_flags__work AS u
  WHERE
    (
      (
        (
          COALESCE(u.mask_0, 0) & 2
        ) <> 0
      )
      OR (
        (
          COALESCE(u.mask_0, 0) & 4
        ) <> 0
      )
    )
    AND NOT u.user_id IN ('SUPPRESSED-PLACEHOLDER')
    AND NOT EXISTS(
      SELECT
        1
      FROM algolia.crm_opted_out AS s
      WHERE
        CAST(s.user_token AS TEXT) = u.user_id
    )
)
SELECT
  'kids' AS segment,
  x.user_id,
  x.score,
  x.matched_affinities,
  CAST('2026-11-28T06:00:00+00:00' AS TIMESTAMPTZ) AS built_at
FROM (
  SELECT
    r.user_id,
    r.score,
    r.matched_affinities
  FROM r
) AS x;

-- audience recent_campers_not_kids
INSERT INTO algolia.segment_members__next (
  segment,
  user_id,
  score,
  matched_affinities,
  built_at
)
WITH r AS (
  SELECT
    u.user_id,
    CAST(NULL AS DOUBLE) AS score,
    CAST(0 AS BIGINT) AS matched_affinities
  FROM segment_user_flags__work AS u
  WHERE
    (
      (
        EXISTS(
          SELECT
            1
          FROM algolia.segment_members__next AS m
          WHERE
            m.segment = 'campers' AND m.user_id = u.user_id
        )
      )
      AND (
        COALESCE((
          u.last_updated_at >= CAST('2026-10-29T00:00:00+00:00' AS TIMESTAMPTZ)
        ), FALSE)
      )
      AND (
        NOT (
          (
            (
              COALESCE(u.mask_0, 0) & 8
            ) <> 0
          )
        )
      )
    )
    AND NOT EXISTS(
      SELECT
        1
      FROM algolia.segment_members__next AS m
      WHERE
        m.segment = 'kids' AND m.user_id = u.user_id
    )
    AND NOT u.user_id IN ('SUPPRESSED-PLACEHOLDER')
    AND NOT EXISTS(
      SELECT
        1
      FROM algolia.crm_opted_out AS s
      WHERE
        CAST(s.user_token AS TEXT) = u.user_id
    )
)
SELECT
  'recent_campers_not_kids' AS segment,
  x.user_id,
  x.score,
  x.matched_affinities,
  CAST('2026-11-28T06:00:00+00:00' AS TIMESTAMPTZ) AS built_at
FROM (
  SELECT
    r.user_id,
    r.score,
    r.matched_affinities
  FROM r
) AS x;

-- audience fresh_french_outdoor
INSERT INTO algolia.segment_members__next (
  segment,
  user_id,
  score,
  matched_affinities,
  built_at
)
WITH r AS (
  SELECT
    u.user_id,
    u.score_3 AS score,
    CAST(COALESCE(u.matched_3, 0) AS BIGINT) AS matched_affinities
  FROM segment_user_flags__work AS u
  WHERE
    (
      COALESCE(u.mask_0, 0) & 16
    ) <> 0
    AND NOT u.user_id IN ('SUPPRESSED-PLACEHOLDER')
    AND NOT EXISTS(
      SELECT
        1
      FROM algolia.crm_opted_out AS s
      WHERE
        CAST(s.user_token AS TEXT) = u.user_id
    )
)
SELECT
  'fresh_french_outdoor' AS segment,
  x.user_id,
  x.score,
  x.matched_affinities,
  CAST('2026-11-28T06:00:00+00:00' AS TIMESTAMPTZ) AS built_at
FROM (
  SELECT
    r.user_id,
    r.score,
    r.matched_affinities
  FROM r
) AS x;

-- audience runners_between
INSERT INTO algolia.segment_members__next (
  segment,
  user_id,
  score,
  matched_affinities,
  built_at
)
WITH r AS (
  SELECT
    u.user_id,
    u.score_4 AS score,
    CAST(COALESCE(u.matched_4, 0) AS BIGINT) AS matched_affinities
  FROM segment_user_flags__work AS u
  WHERE
    (
      COALESCE(u.mask_0, 0) & 32
    ) <> 0
    AND NOT u.user_id IN ('SUPPRESSED-PLACEHOLDER')
    AND NOT EXISTS(
      SELECT
        1
      FROM algolia.crm_opted_out AS s
      WHERE
        CAST(s.user_token AS TEXT) = u.user_id
    )
    AND u.score_4 >= 9.0
)
SELECT
  'runners_between' AS segment,
  x.user_id,
  x.score,
  x.matched_affinities,
  CAST('2026-11-28T06:00:00+00:00' AS TIMESTAMPTZ) AS built_at
FROM (
  SELECT
    r.user_id,
    r.score,
    r.matched_affinities
  FROM r
) AS x;

-- audience top_brand_fans
INSERT INTO algolia.segment_members__next (
  segment,
  user_id,
  score,
  matched_affinities,
  built_at
)
WITH r AS (
  SELECT
    u.user_id,
    u.score_5 AS score,
    CAST(COALESCE(u.matched_5, 0) AS BIGINT) AS matched_affinities
  FROM segment_user_flags__work AS u
  WHERE
    (
      COALESCE(u.mask_0, 0) & 64
    ) <> 0
    AND NOT u.user_id IN ('SUPPRESSED-PLACEHOLDER')
    AND NOT EXISTS(
      SELECT
        1
      FROM algolia.crm_opted_out AS s
      WHERE
        CAST(s.user_token AS TEXT) = u.user_id
    )
)
SELECT
  'top_brand_fans' AS segment,
  x.user_id,
  x.score,
  x.matched_affinities,
  CAST('2026-11-28T06:00:00+00:00' AS TIMESTAMPTZ) AS built_at
FROM (
  SELECT
    r.user_id,
    r.score,
    r.matched_affinities
  FROM r
  WHERE
    r.user_id IN (
      SELECT
        p.user_id
      FROM (
        SELECT
          a.user_id,
          ROW_NUMBER() OVER (PARTITION BY a.name, a.value ORDER BY a.score DESC, a.user_id NULLS FIRST) AS rn
        FROM algolia.user_affinities AS a
        JOIN r AS r2
          ON r2.user_id = a.user_id
        WHERE
          (
            a.name = 'brand'
          )
      ) AS p
      WHERE
        p.rn <= 7
    )
) AS x;

-- audience top_overall
INSERT INTO algolia.segment_members__next (
  segment,
  user_id,
  score,
  matched_affinities,
  built_at
)
WITH r AS (
  SELECT
    u.user_id,
    f.score_6 AS score,
    CAST(COALESCE(f.matched_6, 0) AS BIGINT) AS matched_affinities
  FROM algolia.stg_algolia__users AS u
  LEFT JOIN segment_user_flags__work AS f
    ON f.user_id = u.user_id
  WHERE
    (
      (
        (
          COALESCE(f.mask_0, 0) & 128
        ) <> 0
      )
      OR (
        COALESCE((
          u.type IN ('predictive')
        ), FALSE)
      )
    )
    AND NOT u.user_id IN ('SUPPRESSED-PLACEHOLDER')
    AND NOT EXISTS(
      SELECT
        1
      FROM algolia.crm_opted_out AS s
      WHERE
        CAST(s.user_token AS TEXT) = u.user_id
    )
)
SELECT
  'top_overall' AS segment,
  x.user_id,
  x.score,
  x.matched_affinities,
  CAST('2026-11-28T06:00:00+00:00' AS TIMESTAMPTZ) AS built_at
FROM (
  SELECT
    k.user_id,
    k.score,
    k.matched_affinities
  FROM (
    SELECT
      r.user_id,
      r.score,
      r.matched_affinities,
      ROW_NUMBER() OVER (ORDER BY r.score DESC, r.user_id NULLS FIRST) AS rn
    FROM r
  ) AS k
  WHERE
    k.rn <= 25
) AS x;

-- audience predictive_or_realtime
INSERT INTO algolia.segment_members__next (
  segment,
  user_id,
  score,
  matched_affinities,
  built_at
)
WITH r AS (
  SELECT
    u.user_id,
    CAST(NULL AS DOUBLE) AS score,
    CAST(0 AS BIGINT) AS matched_affinities
  FROM algolia.stg_algolia__users AS u
  LEFT JOIN segment_user_flags__work AS f
    ON f.user_id = u.user_id
  WHERE
    COALESCE(
      (
        u.last_updated_at >= CAST('2026-09-29T00:00:00+00:00' AS TIMESTAMPTZ)
        AND u.type IN ('predictive', 'realtime')
      ),
      FALSE
    )
    AND NOT u.user_id IN ('SUPPRESSED-PLACEHOLDER')
    AND NOT EXISTS(
      SELECT
        1
      FROM algolia.crm_opted_out AS s
      WHERE
        CAST(s.user_token AS TEXT) = u.user_id
    )
)
SELECT
  'predictive_or_realtime' AS segment,
  x.user_id,
  x.score,
  x.matched_affinities,
  CAST('2026-11-28T06:00:00+00:00' AS TIMESTAMPTZ) AS built_at
FROM (
  SELECT
    r.user_id,
    r.score,
    r.matched_affinities
  FROM r
) AS x;

-- audience unusual_values
INSERT INTO algolia.segment_members__next (
  segment,
  user_id,
  score,
  matched_affinities,
  built_at
)
WITH r AS (
  SELECT
    u.user_id,
    u.score_8 AS score,
    CAST(COALESCE(u.matched_8, 0) AS BIGINT) AS matched_affinities
  FROM segment_user_flags__work AS u
  WHERE
    (
      (
        (
          COALESCE(u.mask_0, 0) & 256
        ) <> 0
      )
      OR (
        (
          COALESCE(u.mask_0, 0) & 512
        ) <> 0
      )
      OR (
        (
          COALESCE(u.mask_0, 0) & 1024
        ) <> 0
      )
      OR (
        (
          COALESCE(u.mask_0, 0) & 2048
        ) <> 0
      )
    )
    AND NOT u.user_id IN ('SUPPRESSED-PLACEHOLDER')
    AND NOT EXISTS(
      SELECT
        1
      FROM algolia.crm_opted_out AS s
      WHERE
        CAST(s.user_token AS TEXT) = u.user_id
    )
)
SELECT
  'unusual_values' AS segment,
  x.user_id,
  x.score,
  x.matched_affinities,
  CAST('2026-11-28T06:00:00+00:00' AS TIMESTAMPTZ) AS built_at
FROM (
  SELECT
    r.user_id,
    r.score,
    r.matched_affinities
  FROM r
) AS x;

-- audience not_basic_profiles
INSERT INTO algolia.segment_members__next (
  segment,
  user_id,
  score,
  matched_affinities,
  built_at
)
WITH r AS (
  SELECT
    u.user_id,
    u.score_9 AS score,
    CAST(COALESCE(u.matched_9, 0) AS BIGINT) AS matched_affinities
  FROM segment_user_flags__work AS u
  WHERE
    (
      (
        NOT (
          (
            COALESCE((
              u.type IN ('basic')
            ), FALSE)
          )
        )
      )
      AND (
        (
          COALESCE(u.mask_0, 0) & 4096
        ) <> 0
      )
    )
    AND NOT u.user_id IN ('SUPPRESSED-PLACEHOLDER')
    AND NOT EXISTS(
      SELECT
        1
      FROM algolia.crm_opted_out AS s
      WHERE
        CAST(s.user_token AS TEXT) = u.user_id
    )
)
SELECT
  'not_basic_profiles' AS segment,
  x.user_id,
  x.score,
  x.matched_affinities,
  CAST('2026-11-28T06:00:00+00:00' AS TIMESTAMPTZ) AS built_at
FROM (
  SELECT
    r.user_id,
    r.score,
    r.matched_affinities
  FROM r
) AS x;

-- membership events
INSERT INTO algolia.segment_membership_events (
  segment,
  user_id,
  event,
  build_id,
  built_at
)
SELECT
  n.segment,
  n.user_id,
  'entered',
  '20261128T060000000000Z',
  CAST('2026-11-28T06:00:00+00:00' AS TIMESTAMPTZ)
FROM algolia.segment_members__next AS n
WHERE
  NOT EXISTS(
    SELECT
      1
    FROM algolia.segment_members AS o
    WHERE
      o.segment = n.segment AND o.user_id = n.user_id
  )
UNION ALL
SELECT
  o.segment,
  o.user_id,
  'exited',
  '20261128T060000000000Z',
  CAST('2026-11-28T06:00:00+00:00' AS TIMESTAMPTZ)
FROM algolia.segment_members AS o
WHERE
  o.segment IN (
    'campers',
    'kids',
    'recent_campers_not_kids',
    'fresh_french_outdoor',
    'runners_between',
    'top_brand_fans',
    'top_overall',
    'predictive_or_realtime',
    'unusual_values',
    'not_basic_profiles'
  )
  AND NOT EXISTS(
    SELECT
      1
    FROM algolia.segment_members__next AS n
    WHERE
      n.segment = o.segment AND n.user_id = o.user_id
  );

-- drop segment_members
DROP TABLE IF EXISTS algolia.segment_members;

-- rename segment_members__next
ALTER TABLE algolia.segment_members__next
RENAME TO segment_members;

-- drop segment_members__next
DROP TABLE IF EXISTS algolia.segment_members__next;

-- drop segment_user_flags__work
DROP TABLE IF EXISTS segment_user_flags__work;

-- drop segment_sizes
DROP TABLE IF EXISTS algolia.segment_sizes;

-- table segment_sizes
CREATE TABLE algolia.segment_sizes AS
SELECT
  s.segment,
  COALESCE(m.members, 0) AS members,
  COALESCE(e.entered, 0) AS entered,
  COALESCE(e.exited, 0) AS exited,
  CAST(COALESCE(m.members, 0) AS DOUBLE) / NULLIF((
    SELECT
      COUNT(*)
    FROM algolia.stg_algolia__users
  ), 0) AS share_of_users,
  CAST('2026-11-28T06:00:00+00:00' AS TIMESTAMPTZ) AS built_at,
  '20261128T060000000000Z' AS build_id
FROM (
  SELECT
    'campers' AS segment
  UNION ALL
  SELECT
    'kids' AS segment
  UNION ALL
  SELECT
    'recent_campers_not_kids' AS segment
  UNION ALL
  SELECT
    'fresh_french_outdoor' AS segment
  UNION ALL
  SELECT
    'runners_between' AS segment
  UNION ALL
  SELECT
    'top_brand_fans' AS segment
  UNION ALL
  SELECT
    'top_overall' AS segment
  UNION ALL
  SELECT
    'predictive_or_realtime' AS segment
  UNION ALL
  SELECT
    'unusual_values' AS segment
  UNION ALL
  SELECT
    'not_basic_profiles' AS segment
) AS s
LEFT JOIN (
  SELECT
    segment,
    COUNT(*) AS members
  FROM algolia.segment_members
  GROUP BY
    segment
) AS m
  ON m.segment = s.segment
LEFT JOIN (
  SELECT
    segment,
    COUNT(CASE WHEN event = 'entered' THEN 1 END) AS entered,
    COUNT(CASE WHEN event = 'exited' THEN 1 END) AS exited
  FROM algolia.segment_membership_events
  WHERE
    build_id = '20261128T060000000000Z'
  GROUP BY
    segment
) AS e
  ON e.segment = s.segment;

-- append segment_builds
INSERT INTO algolia.segment_builds (
  build_id,
  segment,
  members,
  entered,
  exited,
  built_at
)
SELECT
  s.build_id,
  s.segment,
  s.members,
  s.entered,
  s.exited,
  s.built_at
FROM algolia.segment_sizes AS s;

-- drop segment_overlaps
DROP TABLE IF EXISTS algolia.segment_overlaps;

-- table segment_overlaps
CREATE TABLE algolia.segment_overlaps AS
SELECT
  a.segment AS segment_a,
  b.segment AS segment_b,
  COALESCE(o.overlap, 0) AS overlap,
  CAST(COALESCE(o.overlap, 0) AS DOUBLE) / NULLIF(a.members, 0) AS pct_of_a,
  CAST(COALESCE(o.overlap, 0) AS DOUBLE) / NULLIF(b.members, 0) AS pct_of_b,
  CAST(COALESCE(o.overlap, 0) AS DOUBLE) / NULLIF(a.members + b.members - COALESCE(o.overlap, 0), 0) AS jaccard,
  CAST('2026-11-28T06:00:00+00:00' AS TIMESTAMPTZ) AS built_at
FROM algolia.segment_sizes AS a
JOIN algolia.segment_sizes AS b
  ON a.segment < b.segment
LEFT JOIN (
  SELECT
    x.segment AS segment_a,
    y.segment AS segment_b,
    COUNT(*) AS overlap
  FROM algolia.segment_members AS x
  JOIN algolia.segment_members AS y
    ON x.user_id = y.user_id AND x.segment < y.segment
  GROUP BY
    x.segment,
    y.segment
) AS o
  ON o.segment_a = a.segment AND o.segment_b = b.segment;

