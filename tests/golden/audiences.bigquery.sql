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
  CAST(SUM(a.users) AS INT64) AS users
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
  ON c.index_name IN UNNEST(JSON_VALUE_ARRAY(a.indices, '$'))
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
    CAST(COUNT(*) AS FLOAT64) / NULLIF((
      SELECT
        COUNT(*)
      FROM algolia.stg_algolia__users
    ), 0) AS share_of_users,
    MIN(a.score) AS score_min,
    AVG(a.score) AS score_avg,
    APPROX_QUANTILES(a.score, 100)[OFFSET(50)] AS score_p50,
    APPROX_QUANTILES(a.score, 100)[OFFSET(90)] AS score_p90,
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
    ROW_NUMBER() OVER (PARTITION BY a.user_id, a.name ORDER BY a.score DESC, a.value) AS affinity_rank
  FROM algolia.stg_algolia__user_affinities AS a
) AS r
WHERE
  r.affinity_rank <= 3;

-- create segment_members if missing
CREATE TABLE IF NOT EXISTS algolia.segment_members (
  segment STRING,
  user_id STRING,
  score FLOAT64,
  matched_affinities INT64,
  built_at TIMESTAMP
)
CLUSTER BY segment;

-- create segment_membership_events if missing
CREATE TABLE IF NOT EXISTS algolia.segment_membership_events (
  segment STRING,
  user_id STRING,
  event STRING,
  build_id STRING,
  built_at TIMESTAMP
)
CLUSTER BY segment, built_at;

-- create segment_builds if missing
CREATE TABLE IF NOT EXISTS algolia.segment_builds (
  build_id STRING,
  segment STRING,
  members INT64,
  entered INT64,
  exited INT64,
  built_at TIMESTAMP
);

-- drop segment_members__next
DROP TABLE IF EXISTS algolia.segment_members__next;

-- create segment_members__next if missing
CREATE TABLE IF NOT EXISTS algolia.segment_members__next (
  segment STRING,
  user_id STRING,
  score FLOAT64,
  matched_affinities INT64,
  built_at TIMESTAMP
);

-- drop segment_user_flags__work
DROP TABLE IF EXISTS algolia.segment_user_flags__work;

-- table segment_user_flags__work
CREATE TABLE algolia.segment_user_flags__work AS
SELECT
  u.user_id,
  u.type,
  u.last_updated_at,
  g.mask_0,
  g.score_0,
  g.matched_0,
  g.score_1,
  g.matched_1,
  g.score_2,
  g.matched_2,
  g.score_3,
  g.matched_3,
  g.score_4,
  g.matched_4
FROM (
  SELECT
    c.user_id,
    BIT_OR(c.mask_0) AS mask_0,
    MAX(CASE WHEN (
      c.mask_0 & 3
    ) <> 0 THEN c.score END) AS score_0,
    SUM(CASE WHEN (
      c.mask_0 & 3
    ) <> 0 THEN 1 ELSE 0 END) AS matched_0,
    MAX(CASE WHEN (
      c.mask_0 & 12
    ) <> 0 THEN c.score END) AS score_1,
    SUM(CASE WHEN (
      c.mask_0 & 12
    ) <> 0 THEN 1 ELSE 0 END) AS matched_1,
    MAX(CASE WHEN (
      c.mask_0 & 16
    ) <> 0 THEN c.score END) AS score_2,
    SUM(CASE WHEN (
      c.mask_0 & 16
    ) <> 0 THEN 1 ELSE 0 END) AS matched_2,
    MAX(CASE WHEN (
      c.mask_0 & 32
    ) <> 0 THEN c.score END) AS score_3,
    SUM(CASE WHEN (
      c.mask_0 & 32
    ) <> 0 THEN 1 ELSE 0 END) AS matched_3,
    MAX(CASE WHEN (
      c.mask_0 & 128
    ) <> 0 THEN c.score END) AS score_4,
    SUM(CASE WHEN (
      c.mask_0 & 128
    ) <> 0 THEN 1 ELSE 0 END) AS matched_4
  FROM (
    SELECT
      a.user_id,
      a.score,
      CAST(CASE
        WHEN a.name = 'categories.lvl0'
        AND a.value IN ('Kids', 'Baby', 'Toys')
        AND a.score >= 5.0
        THEN 1
        ELSE 0
      END + CASE
        WHEN a.name = 'category'
        AND a.value IN ('Toys', 'Baby', 'Kids\' Clothing')
        AND a.score >= 8.0
        THEN 2
        ELSE 0
      END + CASE
        WHEN a.name = 'category' AND a.value = 'Camping' AND a.score >= 15.0
        THEN 4
        ELSE 0
      END + CASE
        WHEN a.name = 'category' AND a.value IN ('Hiking', 'Climbing') AND a.score >= 12.0
        THEN 8
        ELSE 0
      END + CASE
        WHEN a.name = 'brand'
        AND a.value IN ('The North Face', 'Patagonia', 'Coleman')
        AND a.score >= 10.0
        AND 'products_en_US' IN UNNEST(JSON_VALUE_ARRAY(a.indices, '$'))
        THEN 16
        ELSE 0
      END + CASE
        WHEN a.name = 'category' AND a.value = 'Camping' AND a.score >= 5.0
        THEN 32
        ELSE 0
      END + CASE
        WHEN a.name = 'category'
        AND a.value = 'Camping'
        AND a.last_updated_at >= CAST('2026-09-29T06:00:00+00:00' AS TIMESTAMP)
        THEN 64
        ELSE 0
      END + CASE
        WHEN a.name = 'category' AND a.value IN ('Camping', 'Hiking', 'Climbing')
        THEN 128
        ELSE 0
      END AS INT64) AS mask_0
    FROM algolia.user_affinities AS a
    WHERE
      EXISTS(
        SELECT
          1
        FROM (
          SELECT
            'brand' AS name,
            'Coleman' AS value
          UNION ALL
          SELECT
            'brand' AS name,
            'Patagonia' AS value
          UNION ALL
          SELECT
            'brand' AS name,
            'The North Face' AS value
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
            'category' AS name,
            'Baby' AS value
          UNION ALL
          SELECT
            'category' AS name,
            'Camping' AS value
          UNION ALL
          SELECT
            'category' AS name,
            'Climbing' AS value
          UNION ALL
          SELECT
            'category' AS name,
            'Hiking' AS value
          UNION ALL
          SELECT
            'category' AS name,
            'Kids\' Clothing' AS value
          UNION ALL
          SELECT
            'category' AS name,
            'Toys' AS value
        ) AS p
        WHERE
          p.name = a.name AND p.value = a.value
      )
  ) AS c
  GROUP BY
    c.user_id
) AS g
JOIN algolia.stg_algolia__users AS u
  ON u.user_id = g.user_id;

-- audience kids_shoppers
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
    CAST(COALESCE(u.matched_0, 0) AS INT64) AS matched_affinities
  FROM algolia.segment_user_flags__work AS u
  WHERE
    (
      (
        COALESCE(u.mask_0, 0) & 1
      ) <> 0
    )
    OR (
      (
        COALESCE(u.mask_0, 0) & 2
      ) <> 0
    )
)
SELECT
  'kids_shoppers' AS segment,
  x.user_id,
  x.score,
  x.matched_affinities,
  CAST('2026-11-28T06:00:00+00:00' AS TIMESTAMP) AS built_at
FROM (
  SELECT
    r.user_id,
    r.score,
    r.matched_affinities
  FROM r
) AS x;

-- audience outdoor_enthusiasts
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
    CAST(COALESCE(u.matched_1, 0) AS INT64) AS matched_affinities
  FROM algolia.segment_user_flags__work AS u
  WHERE
    (
      (
        (
          (
            COALESCE(u.mask_0, 0) & 4
          ) <> 0
        )
        OR (
          (
            COALESCE(u.mask_0, 0) & 8
          ) <> 0
        )
      )
      AND (
        COALESCE((
          u.last_updated_at >= CAST('2026-10-29T06:00:00+00:00' AS TIMESTAMP)
        ), FALSE)
      )
    )
    AND NOT EXISTS(
      SELECT
        1
      FROM algolia.segment_members__next AS m
      WHERE
        m.segment = 'kids_shoppers' AND m.user_id = u.user_id
    )
)
SELECT
  'outdoor_enthusiasts' AS segment,
  x.user_id,
  x.score,
  x.matched_affinities,
  CAST('2026-11-28T06:00:00+00:00' AS TIMESTAMP) AS built_at
FROM (
  SELECT
    r.user_id,
    r.score,
    r.matched_affinities
  FROM r
) AS x;

-- audience brand_loyalists
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
    u.score_2 AS score,
    CAST(COALESCE(u.matched_2, 0) AS INT64) AS matched_affinities
  FROM algolia.segment_user_flags__work AS u
  WHERE
    (
      COALESCE(u.mask_0, 0) & 16
    ) <> 0
)
SELECT
  'brand_loyalists' AS segment,
  x.user_id,
  x.score,
  x.matched_affinities,
  CAST('2026-11-28T06:00:00+00:00' AS TIMESTAMP) AS built_at
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
          ROW_NUMBER() OVER (PARTITION BY a.name, a.value ORDER BY a.score DESC, a.user_id) AS rn
        FROM algolia.user_affinities AS a
        JOIN r AS r2
          ON r2.user_id = a.user_id
        WHERE
          (
            a.name = 'brand'
            AND a.value IN ('The North Face', 'Patagonia', 'Coleman')
            AND a.score >= 10.0
            AND 'products_en_US' IN UNNEST(JSON_VALUE_ARRAY(a.indices, '$'))
          )
      ) AS p
      WHERE
        p.rn <= 50
    )
) AS x;

-- audience lapsed_campers
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
    CAST(COALESCE(u.matched_3, 0) AS INT64) AS matched_affinities
  FROM algolia.segment_user_flags__work AS u
  WHERE
    (
      (
        (
          COALESCE(u.mask_0, 0) & 32
        ) <> 0
      )
      AND (
        NOT (
          (
            (
              COALESCE(u.mask_0, 0) & 64
            ) <> 0
          )
        )
      )
    )
    AND u.score_3 >= 5.0
)
SELECT
  'lapsed_campers' AS segment,
  x.user_id,
  x.score,
  x.matched_affinities,
  CAST('2026-11-28T06:00:00+00:00' AS TIMESTAMP) AS built_at
FROM (
  SELECT
    r.user_id,
    r.score,
    r.matched_affinities
  FROM r
) AS x;

-- audience top_outdoor_fans
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
    CAST(COALESCE(u.matched_4, 0) AS INT64) AS matched_affinities
  FROM algolia.segment_user_flags__work AS u
  WHERE
    (
      EXISTS(
        SELECT
          1
        FROM algolia.segment_members__next AS m
        WHERE
          m.segment = 'outdoor_enthusiasts' AND m.user_id = u.user_id
      )
    )
    AND (
      (
        COALESCE(u.mask_0, 0) & 128
      ) <> 0
    )
)
SELECT
  'top_outdoor_fans' AS segment,
  x.user_id,
  x.score,
  x.matched_affinities,
  CAST('2026-11-28T06:00:00+00:00' AS TIMESTAMP) AS built_at
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
      ROW_NUMBER() OVER (ORDER BY r.score DESC, r.user_id) AS rn
    FROM r
  ) AS k
  WHERE
    k.rn <= 100
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
  CAST('2026-11-28T06:00:00+00:00' AS TIMESTAMP)
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
  CAST('2026-11-28T06:00:00+00:00' AS TIMESTAMP)
FROM algolia.segment_members AS o
WHERE
  o.segment IN (
    'kids_shoppers',
    'outdoor_enthusiasts',
    'brand_loyalists',
    'lapsed_campers',
    'top_outdoor_fans'
  )
  AND NOT EXISTS(
    SELECT
      1
    FROM algolia.segment_members__next AS n
    WHERE
      n.segment = o.segment AND n.user_id = o.user_id
  );

-- replace segment_members
DELETE FROM algolia.segment_members
WHERE
  TRUE;

-- fill segment_members
INSERT INTO algolia.segment_members (
  segment,
  user_id,
  score,
  matched_affinities,
  built_at
)
SELECT
  n.segment,
  n.user_id,
  n.score,
  n.matched_affinities,
  n.built_at
FROM algolia.segment_members__next AS n;

-- drop segment_members__next
DROP TABLE IF EXISTS algolia.segment_members__next;

-- drop segment_user_flags__work
DROP TABLE IF EXISTS algolia.segment_user_flags__work;

-- drop segment_sizes
DROP TABLE IF EXISTS algolia.segment_sizes;

-- table segment_sizes
CREATE TABLE algolia.segment_sizes AS
SELECT
  s.segment,
  COALESCE(m.members, 0) AS members,
  COALESCE(e.entered, 0) AS entered,
  COALESCE(e.exited, 0) AS exited,
  CAST(COALESCE(m.members, 0) AS FLOAT64) / NULLIF((
    SELECT
      COUNT(*)
    FROM algolia.stg_algolia__users
  ), 0) AS share_of_users,
  CAST('2026-11-28T06:00:00+00:00' AS TIMESTAMP) AS built_at,
  '20261128T060000000000Z' AS build_id
FROM (
  SELECT
    'kids_shoppers' AS segment
  UNION ALL
  SELECT
    'outdoor_enthusiasts' AS segment
  UNION ALL
  SELECT
    'brand_loyalists' AS segment
  UNION ALL
  SELECT
    'lapsed_campers' AS segment
  UNION ALL
  SELECT
    'top_outdoor_fans' AS segment
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
  CAST(COALESCE(o.overlap, 0) AS FLOAT64) / NULLIF(a.members, 0) AS pct_of_a,
  CAST(COALESCE(o.overlap, 0) AS FLOAT64) / NULLIF(b.members, 0) AS pct_of_b,
  CAST(COALESCE(o.overlap, 0) AS FLOAT64) / NULLIF(a.members + b.members - COALESCE(o.overlap, 0), 0) AS jaccard,
  CAST('2026-11-28T06:00:00+00:00' AS TIMESTAMP) AS built_at
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

