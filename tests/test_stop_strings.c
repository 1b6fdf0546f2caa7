/* Stop strings across token boundaries: what is released, held back, and where text ends. */
#include "stop_strings.h"
#include "test.h"

static size_t scan(const char *text, bool final, bool *hit)
{
    static const char *const stops[] = {"\n\n", "END", "Q:"};
    return stop_strings_scan(stops, 3, text, strlen(text), final, hit);
}

TEST(plain_text_is_released_whole)
{
    bool hit;
    CHECK_EQ_INT(scan("hello world", false, &hit), 11);
    CHECK(!hit);
}

TEST(a_possible_start_is_held_back)
{
    bool hit;
    CHECK_EQ_INT(scan("hello E", false, &hit), 6); /* "E" may become "END" */
    CHECK(!hit);
    CHECK_EQ_INT(scan("hello EN", false, &hit), 6);
    CHECK_EQ_INT(scan("hello \n", false, &hit), 6);
    CHECK_EQ_INT(scan("hello ENX", false, &hit), 9); /* cannot become a stop string any more */
    CHECK(!hit);
}

TEST(a_stop_string_split_over_pieces_is_found)
{
    bool hit;
    CHECK_EQ_INT(scan("abc EN", false, &hit), 4);
    CHECK(!hit);
    /* the next piece completes it: the text ends before it */
    CHECK_EQ_INT(scan("EN"
                      "D and more",
                      false, &hit),
                 0);
    CHECK(hit);
    CHECK_EQ_INT(scan("one\n\ntwo", false, &hit), 3);
    CHECK(hit);
}

TEST(the_earliest_stop_string_wins)
{
    bool hit;
    CHECK_EQ_INT(scan("xQ: END", false, &hit), 1);
    CHECK(hit);
}

TEST(at_the_end_only_whole_matches_count)
{
    bool hit;
    CHECK_EQ_INT(scan("hello EN", true, &hit), 8); /* released: no more text will come */
    CHECK(!hit);
    CHECK_EQ_INT(scan("hi END", true, &hit), 3);
    CHECK(hit);
}

TEST(no_stop_strings_release_everything)
{
    bool hit;
    CHECK_EQ_INT(stop_strings_scan(NULL, 0, "abc", 3, false, &hit), 3);
    CHECK(!hit);
}
