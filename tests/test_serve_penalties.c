/* OpenAI's frequency and presence penalties as dsq serve applies them before sampling. */
#include "serve_engine.h"
#include "test.h"

TEST(frequency_counts_and_presence_once)
{
    float logits[4] = {1.0f, 1.0f, 1.0f, 1.0f};
    int counts[4] = {0};
    const int generated[] = {2, 0, 2, 2, 7, -1}; /* 7 and -1 are not tokens: skipped */
    serve_penalties pen = {.frequency = 0.5f, .presence = 0.25f};
    serve_penalties_apply(&pen, logits, 4, counts, generated, 6);
    CHECK_NEAR(logits[0], 1.0 - 0.5 * 1 - 0.25, 0);
    CHECK_NEAR(logits[1], 1.0, 0); /* never generated */
    CHECK_NEAR(logits[2], 1.0 - 0.5 * 3 - 0.25, 0);
    CHECK_NEAR(logits[3], 1.0, 0);
    for (int i = 0; i < 4; i++)
        CHECK_EQ_INT(counts[i], 0); /* scratch left zeroed for the next call */
}

TEST(negative_penalties_favour_repeats)
{
    float logits[2] = {0.0f, 0.0f};
    int counts[2] = {0};
    const int generated[] = {1, 1};
    serve_penalties pen = {.frequency = -1.0f, .presence = -2.0f};
    serve_penalties_apply(&pen, logits, 2, counts, generated, 2);
    CHECK_NEAR(logits[0], 0.0, 0);
    CHECK_NEAR(logits[1], 4.0, 0);
}

TEST(zero_penalties_change_nothing)
{
    float logits[2] = {0.5f, -0.5f};
    int counts[2] = {0};
    const int generated[] = {0, 1, 0};
    serve_penalties pen = {0};
    serve_penalties_apply(&pen, logits, 2, counts, generated, 3);
    CHECK_NEAR(logits[0], 0.5, 0);
    CHECK_NEAR(logits[1], -0.5, 0);
}
